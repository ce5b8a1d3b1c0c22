"""Logits processors in the style of Hugging Face's `logits_process.py`: [n, vocab] -> [n, vocab]."""

from __future__ import annotations

import torch


class Temperature:
    def __init__(self, temperature: float):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


class TopK:
    """Keep the k highest logits (ties at the k-th value are kept too)."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        kth = logits.topk(min(self.k, logits.shape[-1]), dim=-1).values[:, -1:]
        return logits.masked_fill(logits < kth, -torch.inf)


class TopP:
    """Nucleus: keep the smallest set of tokens whose probability reaches p (the top token always)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum - sorted_logits.softmax(-1) >= self.p  # mass before this token already reaches p
        remove[:, 0] = False
        return logits.masked_fill(remove.scatter(1, order, remove), -torch.inf)


def build(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list:
    procs: list = []
    if temperature != 1.0:
        procs.append(Temperature(temperature))
    if top_k > 0:
        procs.append(TopK(top_k))
    if top_p < 1.0:
        procs.append(TopP(top_p))
    return procs
