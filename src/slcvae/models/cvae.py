"""Conditional VAE (Zhao et al. 2017 style) and its KL-vanishing remedies.

    prior      p(z|x)   = N(mu_p, var_p) from the context          (Gaussian MLP)
    posterior  q(z|x,y) = N(mu_q, var_q) from [context; target]    (Gaussian MLP)
    decode     p(y|x,z)   GRU started from [context; z] (with model.attention: reading it, and the source's
                          tokens, at every step; models/attention.py)
    loss       rec + beta(step) * KL(q || p) [+ bow_weight * BOW]

Remedies (CVAEConfig): KL annealing (linear, cyclical), free bits, decoder word dropout,
bag-of-words loss.
"""

from __future__ import annotations

import math

import torch

from slcvae.config import Config
from slcvae.data.batching import Batch
from slcvae.models.attention import build_decoder
from slcvae.models.modules import BagOfWords, Gaussian, gaussian_nll, kl, reparameterize
from slcvae.models.seq2seq import Seq2Seq
from slcvae.models.state import State


class CVAE(Seq2Seq):
    has_latent = True

    def __init__(self, vocab: int, cfg: Config, unk_id: int):
        super().__init__(vocab, cfg, unk_id)
        m = cfg.model
        self.prior = Gaussian(m.context, m.mlp, m.latent)
        self.posterior = Gaussian(m.context + 2 * m.utterance, m.mlp, m.latent)
        self.decoder = build_decoder(vocab, m.context + m.latent, m, unk_id)
        self.bow = BagOfWords(m.context + m.latent, m.mlp, vocab) if cfg.cvae.bow_weight > 0 else None

    def kl_weight(self, step: int) -> float:
        """beta at `step`: 1, a linear ramp over anneal_steps (after anneal_hold steps at 0), or a cyclical ramp."""
        c = self.cfg.cvae
        if c.kl_anneal == "linear":
            return min(1.0, max(0, step - c.anneal_hold) / max(1, c.anneal_steps))
        if c.kl_anneal == "cyclical":
            phase = (step % c.anneal_steps) / c.anneal_steps
            return min(1.0, phase / c.anneal_ratio)
        return 1.0

    def elbo(self, batch: Batch, step: int) -> tuple[dict, dict[str, torch.Tensor]]:
        """The CVAE's negative ELBO and its parts (losses are batch means of per-source sums)."""
        c = self.cfg.cvae
        ctx, memory = self.encoder.read(batch)  # [batch, context], the token memory (attention) or None
        y = self.encoder.target(batch)  # [batch, 2 * utterance]
        mu_p, logvar_p = self.prior(ctx)  # [batch, latent] each
        mu_q, logvar_q = self.posterior(torch.cat([ctx, y], -1))
        z = reparameterize(mu_q, logvar_q)
        cond = torch.cat([ctx, z], -1)
        rec = self.decoder.nll(cond, batch.target, batch.target_lens, c.word_dropout, memory).mean()
        kl_dims = kl(mu_q, logvar_q, mu_p, logvar_p)  # [batch, latent]
        kl_total = kl_dims.sum(-1).mean()
        # free bits: dimensions whose batch-mean KL is under the floor are not pushed further down
        kl_pen = kl_dims.mean(0).clamp(min=c.free_bits).sum() if c.free_bits > 0 else kl_total
        losses = {"rec": rec, "kl": kl_total}
        loss = rec + self.kl_weight(step) * kl_pen
        if self.bow is not None:
            losses["bow"] = self.bow(cond, batch.target, batch.target_lens).mean()
            loss = loss + c.bow_weight * losses["bow"]
        losses["loss"] = loss
        outputs = {"ctx": ctx, "memory": memory, "y": y, "z": z}
        outputs |= {"mu_q": mu_q, "logvar_q": logvar_q, "mu_p": mu_p, "logvar_p": logvar_p}
        return outputs, losses

    def forward(self, batch: Batch, step: int = 0, phase: str = "main") -> tuple[dict, dict[str, torch.Tensor]]:
        return self.elbo(batch, step)

    def log_likelihood(self, batch: Batch, num_samples: int = 1) -> torch.Tensor:
        """Importance-weighted bound on log p(y|x) (Burda et al. 2016), [batch]:

            log 1/K sum_k p(y|x,z_k) p(z_k|x) / q(z_k|x,y),   z_k ~ q(z|x,y)

        K = 1 is the ELBO; the bound tightens towards log p(y|x) as K grows.
        """
        ctx, memory = self.encoder.read(batch)
        mu_p, logvar_p = self.prior(ctx)
        mu_q, logvar_q = self.posterior(torch.cat([ctx, self.encoder.target(batch)], -1))
        log_w = []
        for _ in range(num_samples):  # one decoder pass per sample keeps memory at one batch
            z = reparameterize(mu_q, logvar_q)
            log_py = -self.decoder.nll(torch.cat([ctx, z], -1), batch.target, batch.target_lens, memory=memory)
            log_w.append(log_py - gaussian_nll(z, mu_p, logvar_p) + gaussian_nll(z, mu_q, logvar_q))
        return torch.logsumexp(torch.stack(log_w, 1), 1) - math.log(num_samples)

    def init_state(self, batch: Batch, num_samples: int, latent: str = "prior") -> State:
        """Encode each source once, draw `num_samples` z per source: a state of batch * num_samples rows.

        latent="prior" samples z ~ p(z|x) (the test-time protocol); "posterior" samples
        z ~ q(z|x,y) given the batch's targets (reconstruction).
        """
        ctx, memory = self.encoder.read(batch)
        ctx = ctx.repeat_interleave(num_samples, 0)
        if latent == "prior":
            mu, logvar = self.prior(ctx)
        elif latent == "posterior":
            y = self.encoder.target(batch).repeat_interleave(num_samples, 0)
            mu, logvar = self.posterior(torch.cat([ctx, y], -1))
        else:
            raise ValueError(f"latent must be prior or posterior, got {latent!r}")
        memory = memory.repeat(num_samples) if memory is not None else None
        return self.decoder.init_state(torch.cat([ctx, reparameterize(mu, logvar)], -1), memory)
