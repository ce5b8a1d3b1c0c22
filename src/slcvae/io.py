"""Files the tool writes: atomic replacement, output locks, data fingerprints.

Every writer here leaves either the old file or the new one, never a half (write a temporary file
in the same folder, fsync, rename over). A lock file marks an output as in use by one process;
a lock whose process is gone is recovered with a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slcvae.errors import InputError


def _read_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; done once, at import, before any thread writes
    os.umask(mask)
    return mask


UMASK = _read_umask()


def replace_atomic(path: Path, write: Callable[[str], None]) -> None:
    """write(tmp) into a temporary file beside `path`, fsync it, then rename it over `path`.

    The file gets the mode a plain `open(path, "w")` would give (0666 less the umask), not mkstemp's private 0600:
    an exported model folder must be readable wherever a copy of it would be.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # after write: some writers (safetensors) replace the file they are given
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    replace_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, obj: object) -> None:
    """Strict JSON (NaN and infinities are refused: they are not JSON), written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def fingerprint(path: Path) -> dict[str, object]:
    """What identifies a data file's content: its size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class OutputLock:
    """Hold a lock file while writing an output: `OutputLock.folder(run_dir)` (DIR/.lock) or
    `OutputLock.file(output)` (OUTPUT.lock).

    A second process gets an InputError naming the holder's pid and command; a lock left by a
    process that no longer runs on this host (or an unreadable one older than a minute) is taken
    over with a message on stderr.
    """

    def __init__(self, path: Path):
        self.path, self.held = Path(path), False

    @classmethod
    def folder(cls, directory: Path) -> OutputLock:
        return cls(Path(directory) / ".lock")

    @classmethod
    def file(cls, path: Path) -> OutputLock:
        path = Path(path)
        return cls(path.with_name(path.name + ".lock"))

    def __enter__(self) -> OutputLock:
        self.created = not self.path.parent.exists()  # a folder made only for the lock goes again if nothing was written
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                dead = holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"])
                if dead or (not holder and self._age() > 60):
                    print(
                        f"{self.path}: recovered a stale lock of process {holder.get('pid')} (no longer running)", file=sys.stderr
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                raise InputError(self.path, None, f"in use by process {holder.get('pid')} on {holder.get('host')} since "
                                 f"{holder.get('started')} ({holder.get('command')}); wait for it, or delete the lock file "
                                 "if that process is gone") from None  # fmt: skip
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise InputError(self.path, None, "could not take the lock (another process keeps taking it)")

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _holder(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # being written this instant, or damaged: treated as held by an unknown process
        return data if isinstance(data, dict) else {}

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
            if self.created and not any(self.path.parent.iterdir()):
                self.path.parent.rmdir()
