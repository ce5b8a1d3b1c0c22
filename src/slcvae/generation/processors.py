"""Logits processors in the style of Hugging Face's `logits_process.py`.

Each is called as `proc(ids, logits) -> logits`: ids [n, t] the tokens each row generated so far
(no <bos>), logits [n, vocab] for the next token. Penalties and bans come first, then the
temperature and the truncations (top-k, top-p), as in Hugging Face's order. Constructors validate
their argument and raise ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Temperature:
    def __init__(self, temperature: float):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


class TopK:
    """Keep the k highest logits (ties at the k-th value are kept too)."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        self.k = k

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kth = logits.topk(min(self.k, logits.shape[-1]), dim=-1).values[:, -1:]
        return logits.masked_fill(logits < kth, -torch.inf)


class TopP:
    """Nucleus: keep the smallest set of tokens whose probability reaches p (the top token always)."""

    def __init__(self, p: float):
        if not 0 < p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {p}")
        self.p = p

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum - sorted_logits.softmax(-1) >= self.p  # mass before this token already reaches p
        remove[:, 0] = False
        return logits.masked_fill(remove.scatter(1, order, remove), -torch.inf)


class SuppressTokens:
    """Never emit these ids (e.g. <unk>: a reply with `<unk>` in it is no use to a reader)."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = list(token_ids)

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[:, self.token_ids] = -torch.inf
        return logits


class MinNewTokens:
    """No <eos> before `minimum` tokens were generated."""

    def __init__(self, minimum: int, eos_id: int):
        if minimum < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {minimum}")
        self.minimum, self.eos_id = minimum, eos_id

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] >= self.minimum:
            return logits
        logits = logits.clone()
        logits[:, self.eos_id] = -torch.inf
        return logits


class NoRepeatNGram:
    """Ban every token that would complete an n-gram the row already contains (Paulus et al. 2017)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"no_repeat_ngram_size must be >= 1, got {size}")
        self.size = size

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        n, t = ids.shape
        if t < self.size:
            return logits
        grams = ids.unfold(1, self.size, 1)  # [n, t - size + 1, size]
        prefix = ids[:, t - self.size + 1 :]  # [n, size - 1]: the last size - 1 tokens
        match = (grams[:, :, :-1] == prefix.unsqueeze(1)).all(-1)  # [n, windows]
        banned = torch.zeros_like(logits).scatter_add_(1, grams[:, :, -1], match.to(logits.dtype))
        return logits.masked_fill(banned > 0, -torch.inf)


class RepetitionPenalty:
    """CTRL's penalty (Keskar et al. 2019): a generated token's logit is divided by p if positive, times p if not."""

    def __init__(self, penalty: float):
        if not penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
        self.penalty = penalty

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] == 0:
            return logits
        seen = logits.gather(1, ids)
        return logits.scatter(1, ids, torch.where(seen > 0, seen / self.penalty, seen * self.penalty))


def build(
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    suppress: Sequence[int] = (),
    min_new_tokens: int = 0,
    eos_id: int = -1,
    no_repeat_ngram_size: int = 0,
    repetition_penalty: float = 1.0,
    sampling: bool = True,
) -> list:
    """The processors these settings switch on, in order; the no-op values add none.

    sampling=False (greedy, beam) leaves out temperature, top-k and top-p: they cannot change an argmax
    or a beam's ranking of the survivors, only cost time.
    """
    procs: list = []
    if suppress:
        procs.append(SuppressTokens(suppress))
    if min_new_tokens:
        procs.append(MinNewTokens(min_new_tokens, eos_id))
    if no_repeat_ngram_size:
        procs.append(NoRepeatNGram(no_repeat_ngram_size))
    if repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(repetition_penalty))
    if sampling and temperature != 1.0:
        procs.append(Temperature(temperature))
    if sampling and top_k > 0:
        procs.append(TopK(top_k))
    if sampling and top_p < 1.0:
        procs.append(TopP(top_p))
    return procs
