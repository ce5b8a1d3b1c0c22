"""How much a model reads its source: the nats per target it loses when given another example's source.

    source_use = mean_i [ L(y_i | x_{pi(i)}) - L(y_i | x_i) ]

L is the model's training loss per target (-log p(y|x) for seq2seq, the negative ELBO rec + KL for the CVAE
family), pi a random cycle over the examples (seeded, so every model gets the same swap and no example keeps
its own source), and both terms use the same draws of z. A model that ignores its source scores 0; one whose
targets depend on their source scores the information it takes from it, up to the bound's looseness.
"""

from __future__ import annotations

import numpy as np
import torch

from slcvae.data.batching import Encoded, collate
from slcvae.data.tokenizer import TextTokenizer

SWAP_SEED = 0  # the same swap for every model and run


def swap_sources(data: Encoded, seed: int = SWAP_SEED) -> Encoded:
    """`data` with each example's source replaced by the next one's along a seeded random cycle."""
    order = np.random.default_rng(seed).permutation(len(data))
    source_of = [0] * len(data)
    for own, other in zip(order, np.roll(order, -1), strict=True):
        source_of[own] = int(other)
    return data.select(source_of)


@torch.no_grad()
def source_use(model, data: Encoded, tokenizer: TextTokenizer, batch_size: int, step: int = 10**9) -> float:
    """Nats per target the model takes from its source (the module docstring); 0.0 for fewer than 2 examples."""
    if len(data) < 2:
        return 0.0
    model.eval()
    swapped = swap_sources(data)
    device = next(model.parameters()).device
    order = np.argsort(data.lengths(), kind="stable")
    phase, total = model.phases[0], 0.0  # the first phase is the model's own objective (SLCVAE: the CVAE phase)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for k, start in enumerate(range(0, len(order), batch_size)):
            rows = order[start : start + batch_size]
            loss = []
            for source in (data, swapped):
                torch.manual_seed(k)  # the same z for the own and the swapped source
                _, losses = model(collate(source, rows, tokenizer).to(device), step=step, phase=phase)
                loss.append(losses["rec"] + losses.get("kl", 0.0))
            total += float(loss[1] - loss[0]) * len(rows)
    return total / len(data)
