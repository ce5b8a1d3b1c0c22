"""Self-Labeling CVAE (Zhang et al., ICASSP 2019, arXiv:1903.10842).

A labeling network g(x, y) -> z* gives every target a point in the CVAE's latent space: an
estimate of the "best encoder" for the current decoder. Training alternates two phases:

    label  phase   min_g  -log p(y | x, z* = g(x, y))      decoder and CVAE frozen (recovery loss)
    cvae   phase   min    -ELBO + lambda * D(q(z|x,y), z*)  z* held fixed            (labeling loss)

D is configurable (SLCVAEConfig.distance):
    nll        -log q(z*|x,y)          pulls the mean to z* and scales the variance to fit
    mean_sq    |mu_q - z*|^2
    sample_sq  |z - z*|^2, z ~ q

z* is bounded, B * tanh(raw / B), because unbounded labels grow without limit: the decoder's
initial state saturates, so a larger z* always lowers the recovery loss a little.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from slcvae.config import Config
from slcvae.data.batching import Batch
from slcvae.models.cvae import CVAE
from slcvae.models.modules import Encoder, gaussian_nll, mlp


class Labeler(nn.Module):
    """g(x, y) -> z*: [batch, latent], deterministic.

    With `own` encoders it reads the words itself (the paper's separate labeling network);
    with `shared` it is an MLP on the CVAE's detached encodings of x and y.
    """

    def __init__(self, vocab: int, cfg: Config):
        super().__init__()
        m, s = cfg.model, cfg.slcvae
        self.encoder = Encoder(vocab, m) if s.labeler_encoder == "own" else None
        self.net = mlp(m.context + 2 * m.utterance, m.mlp, m.latent)
        self.bound = s.label_bound

    def forward(self, batch: Batch, ctx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            ctx, y = self.encoder.source(batch), self.encoder.target(batch)
        raw = self.net(torch.cat([ctx, y], -1))
        return self.bound * torch.tanh(raw / self.bound) if self.bound > 0 else raw


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Build the graph without edges to `module`'s parameters: they get no gradient (and no cost)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


class SLCVAE(CVAE):
    phases = ("cvae", "label")

    def __init__(self, vocab: int, cfg: Config, unk_id: int):
        super().__init__(vocab, cfg, unk_id)
        self.labeler = Labeler(vocab, cfg)

    def optimizer_groups(self, lr: float) -> dict[str, dict]:
        label = set(self.labeler.parameters())
        cvae = [p for p in self.parameters() if p not in label]
        return {
            "cvae": {"params": cvae, "lr": lr},  # everything but g: encoders, prior, posterior, decoder
            "label": {"params": list(self.labeler.parameters()), "lr": self.cfg.slcvae.label_lr or lr},
        }

    def label_weight(self, step: int) -> float:
        """lambda at `step`: 0 during warm-up, then constant or falling linearly to 0 over `label_decay_steps`."""
        s = self.cfg.slcvae
        if step < s.warmup_steps:
            return 0.0
        if s.label_decay_steps <= 0:
            return s.label_weight
        return s.label_weight * max(0.0, 1.0 - (step - s.warmup_steps) / s.label_decay_steps)

    def phases_at(self, step: int) -> list[str]:
        """CVAE only during warm-up; then, every `label_every` steps, labeling updates before the CVAE update.

        Once a decaying lambda reaches 0 the labels are unused, so the labeling phase stops too.
        """
        s = self.cfg.slcvae
        if self.label_weight(step) == 0.0 or (step - s.warmup_steps) % s.label_every:
            return ["cvae"]
        return ["label"] * s.label_steps + ["cvae"]

    def selectable(self, step: int) -> bool:
        # during warm-up there are no labels yet: a plain CVAE's low-KL -ELBO would always win
        return step >= self.cfg.slcvae.warmup_steps

    def distance(self, out: dict, z_star: torch.Tensor) -> torch.Tensor:
        """D(q(z|x,y), z*): [batch]."""
        kind = self.cfg.slcvae.distance
        if kind == "nll":
            return gaussian_nll(z_star, out["mu_q"], out["logvar_q"])
        if kind == "mean_sq":
            return ((out["mu_q"] - z_star) ** 2).sum(-1)
        return ((out["z"] - z_star) ** 2).sum(-1)

    def forward(self, batch: Batch, step: int = 0, phase: str = "cvae") -> tuple[dict, dict[str, torch.Tensor]]:
        if phase == "label":
            return self.recovery(batch)
        out, losses = self.elbo(batch, step)
        with torch.no_grad():  # z* is a fixed target in this phase
            z_star = self.labeler(batch, out["ctx"], out["y"])
        losses["label"] = self.distance(out, z_star).mean()
        weight = self.label_weight(step)  # 0 during warm-up: an untrained g gives random labels that q would chase
        if weight > 0:
            losses["loss"] = losses["loss"] + weight * losses["label"]
        return {**out, "z_star": z_star}, losses

    def recovery(self, batch: Batch) -> tuple[dict, dict[str, torch.Tensor]]:
        """Labeling phase: reconstruct y from (x, z*) through the frozen decoder; only g learns."""
        with torch.no_grad():
            ctx = self.encoder.source(batch)
            y = self.encoder.target(batch) if self.labeler.encoder is None else None
        z_star = self.labeler(batch, ctx, y)
        with frozen(self.decoder):
            rec = self.decoder.nll(torch.cat([ctx, z_star], -1), batch.target, batch.target_lens).mean()
        return {"z_star": z_star}, {"recovery": rec, "loss": rec}
