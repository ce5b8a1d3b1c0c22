"""The validation pass: a model's losses on a corpus, its latent health and how much it reads its source.

Used by training (every eval_every steps) and by scoring (`slcvae evaluate --model-dir`, `slcvae compare`).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from slcvae.data.batching import Encoded, collate
from slcvae.data.tokenizer import TextTokenizer
from slcvae.evaluation.source_use import source_use
from slcvae.models import Seq2Seq
from slcvae.models.latent import active_units, mutual_information


@torch.no_grad()
def validate(
    model: Seq2Seq, data: Encoded, tokenizer: TextTokenizer, batch_size: int, step: int, iw_samples: int = 0
) -> dict[str, float]:
    """Validation means per source: rec, kl, elbo = rec + kl, per-token nll and ppl, each phase's extra
    losses (bow, label, recovery), source_use (nats per target taken from the source, evaluation/source_use.py)
    and, for latent models, active units and I(z; x, y) (models/latent.py).

    iw_samples > 0 adds iw_nll (per source) and iw_ppl (per token): the importance-weighted bound
    on -log p(y|x) with that many samples (the exact NLL for seq2seq).
    """
    model.eval()
    order = np.argsort(data.lengths(), kind="stable")  # similar lengths together: less padding
    sums: dict[str, float] = defaultdict(float)
    tokens, mus, logvars = 0, [], []
    with torch.random.fork_rng():  # validation draws z without moving the training RNG (exact resume)
        torch.manual_seed(0)
        for start in range(0, len(order), batch_size):
            batch = collate(data, order[start : start + batch_size], tokenizer).to(next(model.parameters()).device)
            tokens += int((batch.target_lens - 1).sum())
            for phase in model.phases:
                outputs, losses = model(batch, step=step, phase=phase)
                for k, v in losses.items():
                    if k != "loss":
                        sums[k] += v.item() * batch.size
                if "mu_q" in outputs:
                    mus.append(outputs["mu_q"].cpu())
                    logvars.append(outputs["logvar_q"].cpu())
            if iw_samples > 0:
                sums["iw_nll"] -= model.log_likelihood(batch, iw_samples).sum().item()
        n = len(order)
        metrics = {k: v / n for k, v in sums.items()}
        metrics["kl"] = metrics.get("kl", 0.0)
        metrics["elbo"] = metrics["rec"] + metrics["kl"]
        metrics["nll_per_token"] = sums["rec"] / tokens
        metrics["ppl"] = math.exp(min(50.0, metrics["nll_per_token"]))
        if iw_samples > 0:
            metrics["iw_ppl"] = math.exp(min(50.0, sums["iw_nll"] / tokens))
        if mus:
            mu, logvar = torch.cat(mus), torch.cat(logvars)
            metrics["active_units"] = float(active_units(mu))
            metrics["mi"] = mutual_information(mu, logvar)
    metrics["source_use"] = source_use(model, data, tokenizer, batch_size, step)
    return metrics
