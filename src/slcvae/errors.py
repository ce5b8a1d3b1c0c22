"""Errors raised at the boundary, carrying the file and line of the bad input."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input. `str(err)` is the one line the CLI prints: `FILE:LINE: what is wrong`."""

    def __init__(self, path: str | Path | None, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}" if path is not None else message)

    def __reduce__(self):  # rebuilt from its fields: a compare worker's error reaches the parent process intact
        return type(self), (self.path, self.line, self.message)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept on disk."""
