"""Self-Labeling CVAE (Zhang et al., ICASSP 2019, arXiv:1903.10842).

A labeling network g(x, y) -> z* gives every target a point in the CVAE's latent space: an
estimate of the "best encoder" for the current decoder. Training alternates two phases:

    cvae   phase   min    -ELBO + lambda * D(q(z|x,y), z*)  z* held fixed            (labeling loss)
    label  phase   min_g  -log p(y | x, z* = g(x, y))      decoder and CVAE frozen (recovery loss)

lambda follows the run, not a step count tuned to one corpus: lambda stays 0 until the decoder reads x
(the x-gap, `watch_x_gap`, stops growing) or `start_by` of the run's step or time budget is spent,
whichever comes first (the ready step); then, with the KL gate, until z goes unused (the training KL's
running mean below `gate_kl`), at step s; then it rises linearly to its full value at (1 + ramp) s.
The labels are a remedy for a vanished z: on a base that keeps z in use they only moved q and cost
coverage (docs/design.md, rounds 10-12), so there the gate keeps them off and the run is its base.

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
loss costs no KL there (round 5: free labels kept offsets in all 200 units). Without the penalty the
move is not small there: Adam scales the tiny recovery gradient up to full steps.
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
from slcvae.models.state import Memory


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


def x_gap_plateaued(means: torch.Tensor, gap: float, step: int, plateau: float, every: int = 1, min_step: int = 100) -> bool:
    """Update the x-gap's running means in place, [recent, last half of the run]; True once it stopped growing.

    Called every `every`-th step. recent: time constant ~20 steps (a plain mean before that); half:
    time constant step / 2, so it averages the last half of the run whatever its length. "Stopped growing": recent - half <
    plateau * recent, i.e. under `plateau` growth over the last half of the run. A linearly growing
    gap keeps recent ~ 2 half and never triggers; a saturating one triggers soon after it flattens.
    Not before `min_step` (the means need some steps) nor while the gap is ~0 (the decoder reads
    nothing yet: 0.01 nats per token).
    """
    n = step // every  # updates so far
    means[0] += min(1.0, max(0.05 * every, 1.0 / (n + 1))) * (gap - means[0])
    means[1] += 2.0 / (n + 2) * (gap - means[1])
    recent, half = float(means[0]), float(means[1])
    return step >= min_step and recent > 0.01 and recent - half < plateau * recent


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
        # The run's own schedule state, saved with the weights (exact resume; DDP broadcasts rank 0's): the step the
        # decoder read x (ready; -1: not yet), the step lambda started rising (-1: not yet), two running means of the
        # x-gap (XGap) and the training KL's running mean with its weight (a bias-corrected EMA, for the gate).
        self.register_buffer("ready_step", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("start_step", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("x_gap", torch.zeros(2, dtype=torch.float64))  # [recent, last half of the run]
        self.register_buffer("kl_mean", torch.zeros(2, dtype=torch.float64))  # [EMA sum, EMA weight]
        # (batch, ctx, y, mu_q, memory) of the last CVAE phase, detached (memory: the source's tokens, with attention)
        self.encoded: tuple[Batch, torch.Tensor, torch.Tensor, torch.Tensor, Memory | None] | None = None
        self.progress = 0.0  # share of the step or time budget spent, from the trainer (`observe`) before every step

    def optimizer_groups(self, lr: float) -> dict[str, dict]:
        label = set(self.labeler.parameters())
        cvae = [p for p in self.parameters() if p not in label]
        return {
            "cvae": {"params": cvae, "lr": lr},  # everything but g: encoders, prior, posterior, decoder
            "label": {"params": list(self.labeler.parameters()), "lr": self.cfg.slcvae.label_lr or lr},
        }

    def ready_at(self) -> int:
        """The step the labels may start: warmup_steps, or for start = "auto" the step the x-gap plateaued (-1: not yet)."""
        s = self.cfg.slcvae
        return s.warmup_steps if s.start == "steps" else int(self.ready_step)

    def started_at(self) -> int:
        """The step lambda starts rising: the ready step, or with the KL gate the first step from there on whose KL
        running mean was below gate_kl (-1: not yet)."""
        return int(self.start_step) if self.cfg.slcvae.gate_kl > 0 else self.ready_at()

    def training_kl(self) -> float:
        """The running mean of the training KL (nats per source; an EMA over ~100 steps, bias-corrected)."""
        total, weight = self.kl_mean.tolist()
        return total / weight if weight > 0 else float("inf")

    def gated_off(self) -> bool:
        """The gate holds the labels off: they have not started and z is in use (KL running mean >= gate_kl)."""
        gate = self.cfg.slcvae.gate_kl
        return gate > 0 and self.started_at() < 0 and self.training_kl() >= gate

    def watching(self, step: int) -> bool:
        """Whether this step measures the x-gap: start = auto, not ready yet, every watch_every-th step, and with the
        gate only while z goes unused (where the labels could not start anyway, the watch would only cost time)."""
        s = self.cfg.slcvae
        return s.start == "auto" and self.ready_step < 0 and step % s.watch_every == 0 and not self.gated_off()

    def full_at(self) -> int:
        """The step lambda reaches full strength, (1 + ramp) s for the start s (-1: not started yet)."""
        start = self.started_at()
        return start + round(self.cfg.slcvae.ramp * start) if start >= 0 else -1

    def label_weight(self, step: int) -> float:
        """lambda at `step`: 0 before the start s, a linear ramp to label_weight at (1 + ramp) s, then constant
        or a linear decay to label_floor x label_weight (0 by default) over the decay steps; times beta(step)
        with kl_ramp, and with label_fade times a linear fall to 0 over the budget's last `label_fade` share."""
        s = self.cfg.slcvae
        start = self.started_at()
        if start < 0 or step < start:
            return 0.0
        full = self.full_at()
        weight = s.label_weight * (min(1.0, (step - start) / (full - start)) if step < full else 1.0)
        decay = self.decay_steps()
        if decay > 0 and step > full:
            floor = s.label_floor
            weight *= max(floor, 1.0 - (1.0 - floor) * (step - full) / decay)
        if s.label_fade > 0:
            weight *= min(1.0, max(0.0, 1.0 - self.progress) / s.label_fade)
        return weight * (self.kl_weight(step) if s.kl_ramp else 1.0)

    def decay_steps(self) -> int:
        """Steps over which a full lambda falls to 0: label_decay_steps, or label_span times the start step (0: never)."""
        s = self.cfg.slcvae
        return s.label_decay_steps or round(s.label_span * max(0, self.started_at()))

    def labels_done(self, step: int) -> bool:
        """A decaying lambda that reached 0 for good (no floor): labels are unused from here on."""
        full, decay = self.full_at(), self.decay_steps()
        return decay > 0 and self.cfg.slcvae.label_floor == 0 and full >= 0 and step >= full + decay

    def phases_at(self, step: int) -> list[str]:
        """Every `label_every` steps, the CVAE update, then `label_steps` labeling updates on the same batch.

        The labeling phase reuses the CVAE phase's encodings of x and y (detached): re-encoding them was
        ~55% of a labeling phase at default sizes (42 of 77 ms; 3.01 -> 3.57 steps/s, bench/paper_speed.py).

        The labeling network trains from step 0 (train_labeler_early) or from the start of lambda;
        once a decaying lambda reaches 0 the labeling phase stops too.
        """
        s = self.cfg.slcvae
        started = self.started_at() >= 0 and step >= self.started_at()
        if self.labels_done(step) or not (started or s.train_labeler_early) or step % s.label_every:
            return ["cvae"]
        return ["cvae"] + ["label"] * s.label_steps

    def observe(self, step: int, progress: float) -> None:
        """start = "auto": a run whose x-gap has not flattened by `start_by` of its budget starts lambda anyway,
        so labels act in short runs too (in a 1-minute run the decoder reads x long before the gap flattens) -
        but only once the decoder reads x at all (x-gap over 0.01 nats per token): labels before that carry
        the content into z (the held-out corpus at 3 minutes: x-gap 0.0 at half the budget, precision 0)."""
        self.progress = progress
        s = self.cfg.slcvae
        if s.start == "auto" and self.ready_step < 0 and progress >= s.start_by and float(self.x_gap[0]) > 0.01:
            self.ready_step.fill_(step)
        ready = self.ready_at()
        if s.gate_kl > 0 and self.start_step < 0 and 0 <= ready <= step and self.training_kl() < s.gate_kl:
            self.start_step.fill_(step)  # x read and z unused: the labels have work to do

    def selectable(self, step: int) -> bool:
        # until lambda is at full strength the objective is still changing: a plain CVAE's low-KL -ELBO would always win;
        # held off by the gate, the objective is the base's
        full = self.full_at()
        return step >= full if full >= 0 else self.gated_off()

    def schedule(self, step: int) -> dict[str, float | None]:
        """What the summary of a run at `step` reports: where lambda started rising (None: not by `step`)."""
        start, ready = self.started_at(), self.ready_at()
        return {
            "label_start_step": start if 0 <= start <= step else None,
            "label_ready_step": ready if 0 <= ready <= step else None,  # the x-gap plateau (or warmup_steps, start_by)
            "label_gated": self.gated_off(),  # not started, z in use (KL >= gate_kl): so far the run is its base
            "training_kl": round(kl, 4) if (kl := self.training_kl()) < float("inf") else None,  # None: no step yet
            "x_gap": float(self.x_gap[0]),
        }

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
            with torch.no_grad():  # the gate's KL: a bias-corrected EMA, decay 0.99 (~100 steps)
                self.kl_mean.mul_(0.99).add_(torch.stack([losses["kl"].detach().double(), self.kl_mean.new_ones(())]), alpha=0.01)
        if self.training and self.watching(step):
            losses["x_gap"] = self.watch_x_gap(batch, out, losses["rec"], step)
        if self.gated_off():  # the run is its base: no labels to compute (they cost 3-4% of the steps, round 12)
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

        It grows while the decoder learns to read x and flattens once it has; lambda may start then
        (finding 2 in docs/design.md: labels that arrive earlier carry x's content into z). Two running
        means (`x_gap_plateaued`) make "stopped growing" mean the same at any budget.
        """
        ctx = out["ctx"].roll(1, 0)  # every row gets its neighbour's context (and source tokens), same z and target
        rolled = torch.arange(-1, batch.size - 1, device=ctx.device) % batch.size  # the rows `roll(1, 0)` gives
        memory = out["memory"].index(rolled) if out["memory"] is not None else None
        other = self.decoder.nll(torch.cat([ctx, out["z"]], -1), batch.target, batch.target_lens, memory=memory).mean()
        gap = ((other - rec) / (batch.target_lens - 1).float().mean()).double()
        s = self.cfg.slcvae
        if x_gap_plateaued(self.x_gap, float(gap), step, s.plateau, s.watch_every):
            self.ready_step.fill_(step + 1)
        return gap.float()

    def recovery(self, batch: Batch) -> tuple[dict, dict[str, torch.Tensor]]:
        """Labeling phase: reconstruct y from (x, z*) through the frozen decoder; only g learns.

        With label_prior = w the loss is recovery + w (-log p(z*|x)) under the frozen prior: at w = 1, z* is the
        mode of p(y|x,z) p(z|x), the true posterior's, so labels carry what y adds to x at a cost the KL will pay.
        With label_even = e it adds e Var_batch(r), r = |(z* - mu_p) / sigma_p| the label's Mahalanobis distance from
        the prior's mean ([batch]): styles at one radius are drawn from the prior about evenly; far ones are drawn
        less (design.md, round 7: rho -0.68 to -0.84 between a style's distance and its share).
        """
        w, even = self.cfg.slcvae.label_prior, self.cfg.slcvae.label_even
        with torch.no_grad():
            seen, ctx, y, mu_q, memory = self.encoded if self.encoded is not None else (None,) * 5
            if seen is not batch:  # no CVAE phase on this batch before (a caller of its own): encode it here
                ctx, memory = self.encoder.read(batch)
                # y feeds a shared labeler and q's mean; a labeler with its own encoders and free labels needs neither
                y = self.encoder.target(batch) if self.labeler.encoder is None or self.labeler.residual else None
                mu_q = self.posterior(torch.cat([ctx, y], -1))[0] if self.labeler.residual else None
            mu_p, logvar_p = self.prior(ctx) if w > 0 or even > 0 else (None, None)  # [batch, latent] each
        z_star = self.labeler(batch, ctx, y, mu_q)
        with frozen(self.decoder):
            rec = self.decoder.nll(torch.cat([ctx, z_star], -1), batch.target, batch.target_lens, memory=memory).mean()
        losses = {"recovery": rec, "loss": rec}
        if self.labeler.residual:
            losses["move"] = ((z_star - mu_q) ** 2).sum(-1).mean()
            losses["loss"] = losses["loss"] + self.cfg.slcvae.label_move * losses["move"]
        if w > 0:
            losses["label_prior"] = gaussian_nll(z_star, mu_p, logvar_p).mean()
            losses["loss"] = losses["loss"] + w * losses["label_prior"]
        if even > 0:
            r = ((z_star - mu_p) ** 2 / logvar_p.exp()).sum(-1).add(1e-12).sqrt()  # [batch]; eps: finite grad at r = 0
            losses["label_even"] = ((r - r.mean()) ** 2).mean()
            losses["loss"] = losses["loss"] + even * losses["label_even"]
        return {"z_star": z_star}, losses
