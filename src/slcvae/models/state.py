"""What a decoder carries from one step to the next, for n rows (a row: one output being written).

`State.h` is the GRU's hidden state. An attention decoder also carries, per row, the conditioning vector
[context; z] it reads at every step and the source's token states (`Memory`). Decoding loops never look
inside: they keep, drop, reorder and repeat rows with `index` and `repeat`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class Memory:
    """The source's token states for attention: every token of every turn of a row's source, oldest first."""

    values: torch.Tensor  # [n, source_len, memory]: token states (turn-aware), zero at pads
    mask: torch.Tensor  # [n, source_len] bool: True at real tokens
    ids: torch.Tensor  # [n, source_len] token ids, 0 at pads: what a copy mechanism copies
    keys: torch.Tensor | None = None  # [n, source_len, decoder]: values projected for scoring, once per decode

    def index(self, rows: torch.Tensor) -> Memory:
        """The rows `rows` (indices or a bool mask), in that order."""
        return Memory(*(None if t is None else t[rows] for t in self._fields()))

    def repeat(self, k: int) -> Memory:
        """Each row k times in a row: [n, ...] -> [n * k, ...] (N outputs per source)."""
        return Memory(*(None if t is None else t.repeat_interleave(k, 0) for t in self._fields()))

    def detach(self) -> Memory:
        return Memory(*(None if t is None else t.detach() for t in self._fields()))

    def _fields(self) -> list[torch.Tensor | None]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


@dataclass
class State:
    """A decoder's state for n rows."""

    h: torch.Tensor  # [layers, n, decoder]: the GRU's hidden state
    cond: torch.Tensor | None = None  # [n, n_cond]: [context; z], read at every step (attention decoder)
    memory: Memory | None = None  # the source's token states (attention decoder)

    @property
    def rows(self) -> int:
        return self.h.shape[1]

    def index(self, rows: torch.Tensor) -> State:
        """The rows `rows` (indices or a bool mask), in that order."""
        return State(
            self.h[:, rows],
            None if self.cond is None else self.cond[rows],
            None if self.memory is None else self.memory.index(rows),
        )

    def repeat(self, k: int) -> State:
        """Each row k times in a row (a beam of width k per row)."""
        return State(
            self.h.repeat_interleave(k, 1),
            None if self.cond is None else self.cond.repeat_interleave(k, 0),
            None if self.memory is None else self.memory.repeat(k),
        )
