"""Self-Labeling CVAE (Zhang et al., ICASSP 2019, arXiv:1903.10842).

A labeling network g(x, y) -> z* gives every target a point in the CVAE's latent space: an
estimate of the "best encoder" for the current decoder. Training alternates two phases:

    cvae   phase   min    -ELBO + lambda * D(q(z|x,y), z*)  z* held fixed            (labeling loss)
    label  phase   min_g  -log p(y | x, z* = g(x, y))      decoder and CVAE frozen (recovery loss)

lambda follows the run (`schedule.LabelSchedule`): 0 until the decoder reads x, and with the KL gate until z goes
unused, then a linear ramp. The labels are a remedy for a vanished z: on a base that keeps z in use they only moved q
and cost coverage (docs/design/slcvae.md), so there the gate keeps them off and the run is its base.

D is configurable (SLCVAEConfig.distance):
    nll        -log q(z*|x,y)          pulls the mean to z* and scales the variance to fit
    mean_sq    |mu_q - z*|^2
    sample_sq  |z - z*|^2, z ~ q

z* is bounded, B * tanh(raw / B), because unbounded labels grow without limit: the decoder's
initial state saturates, so a larger z* always lowers the recovery loss a little.

With label_base = "posterior" (the default), z* = B * tanh((mu_q(x, y) + raw) / B), mu_q detached, g's last layer
starting at 0: a label starts at the current encoder's code, and the labeling phase adds label_move
|z* - mu_q|^2 to the recovery loss, so z* is a proximal step from q's mean toward the decoder's best code.
Where the decoder ignores a direction the penalty wins and the label stays on q's mean, so the labeling
loss costs no KL there (free labels kept offsets in all 200 units of a 200-unit latent). Without the penalty
the move is not small there: Adam scales the tiny recovery gradient up to full steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from slcvae.config import Config
from slcvae.data.batching import Batch
from slcvae.models.cvae import CVAE
from slcvae.models.modules import Encoder, gaussian_nll, mlp, param_groups
from slcvae.models.schedule import LabelSchedule
from slcvae.models.state import Memory


class Labeler(nn.Module):
    """g(x, y) -> z*: [batch, latent], deterministic.

    With `own` encoders it reads the words itself (the paper's separate labeling network);
    with `shared` it is an MLP on the CVAE's detached encodings of x and y.
    """

    def __init__(self, vocab: int, cfg: Config):
        super().__init__()
        m, s = cfg.model, cfg.slcvae
        self.encoder = Encoder(vocab, m, cfg.data) if s.labeler_encoder == "own" else None
        self.net = mlp(m.context + 2 * m.utterance, m.mlp, m.latent)
        self.bound = s.label_bound
        self.residual = s.label_base == "posterior"
        if self.residual:  # labels start exactly on q's mean; a direction moves only where recovery pulls it
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, batch: Batch, ctx: torch.Tensor, y: torch.Tensor, mu_q: torch.Tensor | None = None) -> torch.Tensor:
        """z*: [batch, latent]. ctx, y: the CVAE's detached encodings; mu_q: q's detached mean (label_base = posterior)."""
        if self.encoder is not None:
            ctx, y = self.encoder.source(batch), self.encoder.target(batch)
        raw = self.net(torch.cat([ctx, y], -1))
        if self.residual:  # bound the label, not the move: a bounded move chases q's mean (mu_q ran off, rec 0.2 -> 7)
            if mu_q is None:
                raise ValueError("slcvae.label_base = posterior: the labeler needs q's mean (mu_q), got None")
            raw = mu_q + raw
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
        # g's initialization draws from a stream of its own, so the global RNG after building an SLCVAE is where it is
        # after building its CVAE + BOW base: with one seed both train step for step alike until lambda starts
        # (the watch and the labeling phase draw nothing), and a seed's SLCVAE - CVAE + BOW gap is the labels' alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed + 1)
            self.labeler = Labeler(vocab, cfg)
        self.label_schedule = LabelSchedule(cfg.slcvae)  # lambda over the run; its state is saved with the weights
        self._register_load_state_dict_pre_hook(_schedule_keys)
        # (batch, ctx, y, mu_q, memory) of the last CVAE phase, detached (memory: the source's tokens, with attention)
        self.encoded: tuple[Batch, torch.Tensor, torch.Tensor, torch.Tensor, Memory | None] | None = None

    def optimizer_groups(self, lr: float) -> dict[str, list[dict]]:
        label = set(self.labeler.parameters())
        cvae = [p for p in self.parameters() if p not in label]
        encoder_lr = self.cfg.train.encoder_lr
        return {
            "cvae": param_groups(self, cvae, lr, encoder_lr),  # everything but g: encoders, prior, posterior, decoder
            "label": param_groups(self, list(self.labeler.parameters()), self.cfg.slcvae.label_lr or lr, encoder_lr),
        }

    def label_weight(self, step: int) -> float:
        """lambda at `step` (LabelSchedule.weight; with kl_ramp it follows the KL-annealing weight too)."""
        return self.label_schedule.weight(step, self.kl_weight(step))

    def phases_at(self, step: int) -> list[str]:
        """The CVAE update, then (once lambda started) the labeling updates on the same batch (LabelSchedule).

        The labeling phase reuses the CVAE phase's encodings of x and y (detached): re-encoding them was
        ~55% of a labeling phase at default sizes (bench/paper_speed.py).
        """
        return self.label_schedule.phases_at(step)

    def observe(self, step: int, progress: float) -> None:
        self.label_schedule.observe(step, progress)

    def selectable(self, step: int) -> bool:
        return self.label_schedule.selectable(step)

    def schedule(self, step: int) -> dict[str, float | None]:
        """What the summary of a run at `step` reports about lambda."""
        return self.label_schedule.summary(step)

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
        if self.training:  # the labeling phase that follows on this batch reads x and y from here
            memory = out["memory"].detach() if out["memory"] is not None else None
            self.encoded = (batch, out["ctx"].detach(), out["y"].detach(), out["mu_q"].detach(), memory)
        if self.training:
            self.label_schedule.add_kl(losses["kl"])
        if self.training and self.label_schedule.watching():
            losses["x_gap"] = self.watch_x_gap(batch, out, losses["rec"], step)
        if self.label_schedule.gated_off():  # the run is its base: no labels to compute (they cost 3-4% of a step)
            return out, losses
        with torch.no_grad():  # z* is a fixed target in this phase
            z_star = self.labeler(batch, out["ctx"], out["y"], out["mu_q"])
        losses["label"] = self.distance(out, z_star).mean()
        weight = self.label_weight(step)  # 0 until the decoder reads x: earlier labels would carry x's content into z
        if weight > 0:
            losses["loss"] = losses["loss"] + weight * losses["label"]
        return {**out, "z_star": z_star}, losses

    @torch.no_grad()
    def watch_x_gap(self, batch: Batch, out: dict, rec: torch.Tensor, step: int) -> torch.Tensor:
        """The x-gap: how much worse the decoder reconstructs y from another row's context, per token.

        It grows while the decoder learns to read x and flattens once it has; lambda may start then (labels
        that arrive earlier carry x's content into z). Two running means (`schedule.x_gap_plateaued`) make
        "stopped growing" mean the same at any budget.
        """
        ctx = out["ctx"].roll(1, 0)  # every row gets its neighbour's context (and source tokens), same z and target
        rolled = torch.arange(-1, batch.size - 1, device=ctx.device) % batch.size  # the rows `roll(1, 0)` gives
        memory = out["memory"].index(rolled) if out["memory"] is not None else None
        other = self.decoder.nll(torch.cat([ctx, out["z"]], -1), batch.target, batch.target_lens, memory=memory).mean()
        gap = (other - rec) / (batch.target_lens - 1).float().mean()
        self.label_schedule.add_x_gap(float(gap), step)
        return gap

    def recovery(self, batch: Batch) -> tuple[dict, dict[str, torch.Tensor]]:
        """Labeling phase: reconstruct y from (x, z*) through the frozen decoder; only g learns.

        With label_base = posterior the loss adds label_move |z* - mu_q|^2: a proximal step from q's mean.
        """
        with torch.no_grad():
            seen, ctx, y, mu_q, memory = self.encoded if self.encoded is not None else (None,) * 5
            if seen is not batch:  # no CVAE phase on this batch before (a caller of its own): encode it here
                ctx, memory = self.encoder.read(batch)
                # y feeds a shared labeler and q's mean; a labeler with its own encoders and free labels needs neither
                y = self.encoder.target(batch) if self.labeler.encoder is None or self.labeler.residual else None
                mu_q = self.posterior(torch.cat([ctx, y], -1))[0] if self.labeler.residual else None
        z_star = self.labeler(batch, ctx, y, mu_q)
        with frozen(self.decoder):
            rec = self.decoder.nll(torch.cat([ctx, z_star], -1), batch.target, batch.target_lens, memory=memory).mean()
        losses = {"recovery": rec, "loss": rec}
        if self.labeler.residual:
            losses["move"] = ((z_star - mu_q) ** 2).sum(-1).mean()
            losses["loss"] = losses["loss"] + self.cfg.slcvae.label_move * losses["move"]
        return {"z_star": z_star}, losses


def _schedule_keys(state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints saved before the schedule was its own module keep its buffers at the model's top level."""
    for name in ("ready_step", "start_step", "x_gap", "kl_mean"):
        if prefix + name in state_dict:
            state_dict[f"{prefix}label_schedule.{name}"] = state_dict.pop(prefix + name)
