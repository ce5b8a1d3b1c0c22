"""Latent health of a CVAE on a corpus: is z used, and how much does it carry?

active_units  dimensions whose posterior mean varies across the data, Cov_x(E_q[z]) > 0.01 (Burda et al. 2016)
mi            I(z; x, y) under q with the mixture of all the corpus' posteriors as q(z)
              (He et al. 2019's estimator), in nats; at most log(N)
kl            KL(q(z|x,y) || p(z|x)), per source (computed by the model's loss)
iw_nll        -log p(y|x) bounded with K importance samples (models/cvae.py log_likelihood)
"""

from __future__ import annotations

import math

import torch

from slcvae.models.modules import gaussian_nll


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """mu: [n, latent] posterior means -> number of dimensions with variance over the data > threshold."""
    return int((mu.var(0) > threshold).sum()) if mu.shape[0] > 1 else 0


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """I(z; data) under q: mean_i [log q(z_i|i) - log (1/N) sum_j q(z_i|j)], z_i ~ q(z|i).

    mu, logvar: [n, latent]. Both terms use the same draws, so identical posteriors give exactly 0
    and posteriors far apart give exactly log(n). Rows are processed in chunks: memory O(chunk * n * latent).
    """
    n = mu.shape[0]
    z = mu + torch.randn(mu.shape, generator=generator, dtype=mu.dtype) * torch.exp(0.5 * logvar)
    log_own = -gaussian_nll(z, mu, logvar)  # [n]
    log_mix = []
    for start in range(0, n, 64):
        zc = z[start : start + 64].unsqueeze(1)  # [chunk, 1, latent]
        dens = -gaussian_nll(zc, mu.unsqueeze(0), logvar.unsqueeze(0))  # [chunk, n]
        log_mix.append(torch.logsumexp(dens, 1) - math.log(n))
    return float((log_own - torch.cat(log_mix)).mean())
