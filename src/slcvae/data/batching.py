"""Examples -> padded tensors, in length-bucketed batches.

A source is a list of turns; the batch keeps all turns of all sources flattened in one padded
matrix (`turns`) so a single bidirectional GRU call encodes them, and `n_turns` says how many
belong to each source for the context GRU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from slcvae.config import DataConfig
from slcvae.data.corpus import Example
from slcvae.data.tokenizer import TextTokenizer


@dataclass
class Encoded:
    """Token ids of a corpus: per example, its turns and one target (empty when unknown)."""

    turns: list[list[list[int]]]  # [example][turn][token]
    targets: list[list[int]]  # [example][token], without <bos>/<eos>
    truncated: int = 0  # how many turns or targets were cut to the configured maximum
    vectors: list[torch.Tensor] | None = None  # data.encoder: [example] -> [turns, dim], each turn's pretrained vector
    target_vectors: torch.Tensor | None = None  # data.encoder: [example, dim], each target's
    read_turns: list[list[list[int]]] | None = None  # data.encoder_tune: [example][turn][token], the encoder's tokens
    read_targets: list[list[int]] | None = None  # data.encoder_tune: [example][token]

    def select(self, source_of: Sequence[int]) -> Encoded:
        """Row i with the source (turns and their vectors) of row source_of[i] and its own target."""
        vectors = [self.vectors[j] for j in source_of] if self.vectors is not None else None
        read = [self.read_turns[j] for j in source_of] if self.read_turns is not None else None
        return Encoded([self.turns[j] for j in source_of], self.targets, self.truncated, vectors, self.target_vectors,
                       read, self.read_targets)  # fmt: skip

    def __len__(self) -> int:
        return len(self.targets)

    def lengths(self) -> np.ndarray:
        """A sort key for bucketing: target length dominates, source length breaks ties."""
        return np.array([len(t) * 1000 + sum(map(len, s)) for s, t in zip(self.turns, self.targets, strict=True)])


def fit_tokenizer(examples: Sequence[Example], cfg: DataConfig) -> TextTokenizer:
    """A tokenizer trained on every source turn and target of `examples`, with the data config's settings."""
    texts = [t for ex in examples for t in (*ex.source, *ex.targets)]
    return TextTokenizer.train(texts, cfg.tokenizer, cfg.lowercase, cfg.max_vocab, cfg.min_freq)


def encode(examples: Sequence[Example], tokenizer: TextTokenizer, cfg: DataConfig) -> Encoded:
    """Tokenize each example's source turns and its first target, truncating to the limits."""
    truncated = 0
    flat = [turn for ex in examples for turn in ex.source[-cfg.max_turns :]]
    truncated += sum(len(ex.source) > cfg.max_turns for ex in examples)
    flat_ids = tokenizer.encode(flat)
    target_ids = tokenizer.encode([ex.targets[0] if ex.targets else "" for ex in examples])
    turns, targets, pos = [], [], 0
    for ex, tgt in zip(examples, target_ids, strict=True):
        n = min(len(ex.source), cfg.max_turns)
        kept = []
        for ids in flat_ids[pos : pos + n]:
            truncated += len(ids) > cfg.max_source_len
            kept.append(ids[: cfg.max_source_len] or [tokenizer.unk_id])
        pos += n
        truncated += len(tgt) > cfg.max_target_len
        turns.append(kept)
        targets.append(tgt[: cfg.max_target_len])
    if not cfg.encoder:
        return Encoded(turns, targets, truncated)
    from slcvae.pretrained import token_ids, vectors_for

    texts = flat + [ex.targets[0] if ex.targets else "" for ex in examples]
    if cfg.encoder_tune:  # the model runs the encoder: its tokens, turn by turn
        ids = token_ids(cfg, texts)
        ends = np.cumsum([len(t) for t in turns]).tolist()
        return Encoded(turns, targets, truncated, read_turns=[ids[b - len(t) : b] for t, b in zip(turns, ends, strict=True)],
                       read_targets=ids[len(flat) :])  # fmt: skip
    vectors = vectors_for(cfg, texts)
    return Encoded(turns, targets, truncated, list(vectors[: len(flat)].split([len(t) for t in turns])), vectors[len(flat) :])


@dataclass
class Batch:
    turns: torch.Tensor  # [n_turns_total, max_turn_len] token ids, 0 = pad
    turn_lens: torch.Tensor  # [n_turns_total]
    n_turns: torch.Tensor  # [batch] turns per source (they are consecutive rows of `turns`)
    target: torch.Tensor  # [batch, max_target_len + 2] <bos> ids <eos>, 0-padded
    target_lens: torch.Tensor  # [batch] length including <bos> and <eos>
    turn_vecs: torch.Tensor | None = None  # data.encoder: [n_turns_total, dim], in the rows of `turns`
    target_vec: torch.Tensor | None = None  # data.encoder: [batch, dim]
    turn_read: torch.Tensor | None = None  # data.encoder_tune: [n_turns_total, len] the encoder's token ids, 0-padded
    turn_read_lens: torch.Tensor | None = None  # [n_turns_total]
    target_read: torch.Tensor | None = None  # data.encoder_tune: [batch, len]
    target_read_lens: torch.Tensor | None = None  # [batch]

    @property
    def size(self) -> int:
        return self.n_turns.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        fields = (getattr(self, f.name) for f in dataclasses.fields(self))
        return Batch(*(t.to(device) if t is not None else None for t in fields))


def _pad(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = torch.zeros(len(rows), int(lens.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out, lens


def collate(data: Encoded, indices: Sequence[int], tokenizer: TextTokenizer) -> Batch:
    turns = [turn for i in indices for turn in data.turns[i]]
    turn_ids, turn_lens = _pad(turns)
    n_turns = torch.tensor([len(data.turns[i]) for i in indices], dtype=torch.long)
    target, target_lens = _pad([[tokenizer.bos_id, *data.targets[i], tokenizer.eos_id] for i in indices])
    batch = Batch(turn_ids, turn_lens, n_turns, target, target_lens)
    if data.vectors is not None:
        batch.turn_vecs = torch.cat([data.vectors[i] for i in indices])
        batch.target_vec = data.target_vectors[list(indices)]
    if data.read_turns is not None:
        batch.turn_read, batch.turn_read_lens = _pad([turn for i in indices for turn in data.read_turns[i]])
        batch.target_read, batch.target_read_lens = _pad([data.read_targets[i] for i in indices])
    return batch


def bucket_order(lengths: np.ndarray, batch_size: int, pool_batches: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch's batches: shuffle, sort pools of `pool_batches` batches by length, shuffle the batches.

    Deterministic in (seed, epoch), so a resumed run replays the same order.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sequential_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    """In-order batches for evaluation and generation (outputs keep the input order)."""
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))
