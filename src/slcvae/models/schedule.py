"""When SLCVAE's labels act: the schedule of lambda, the weight of the labeling loss.

The paper alternates the two phases from the start with a fixed lambda. Here lambda follows the run, not a step
count tuned to one corpus:

    ready   the decoder reads x: the x-gap (how much worse y is reconstructed from another row's context)
            stopped growing (`x_gap_plateaued`), or `start_by` of the run's budget is spent while it is > 0.01
            nats per token; or simply `warmup_steps` with start = "steps"
    start   with the KL gate: the first step from ready on whose training-KL running mean is below gate_kl
            (z goes unused, the failure the labels exist for); without the gate: ready
    ramp    lambda rises linearly from 0 at the start s to label_weight at (1 + ramp) s, then stays (or decays
            linearly to 0 over label_decay_steps)

The state (ready and start steps, the x-gap's and the KL's running means) lives in buffers, so it is saved with
the weights, restored exactly on resume and broadcast from rank 0 under DDP.
"""

from __future__ import annotations

import torch
from torch import nn

from slcvae.config import SLCVAEConfig

MIN_X_GAP = 0.01  # nats per token: below this the decoder reads nothing of x yet


def x_gap_plateaued(means: torch.Tensor, gap: float, step: int, plateau: float, min_step: int = 100) -> bool:
    """Update the x-gap's running means in place, [recent, last half of the run]; True once it stopped growing.

    recent: time constant ~20 steps (a plain mean before that); half: time constant step / 2, so it averages the
    last half of the run whatever its length. "Stopped growing": recent - half < plateau * recent, i.e. under
    `plateau` growth over the last half of the run. A linearly growing gap keeps recent ~ 2 half and never
    triggers; a saturating one triggers soon after it flattens. Not before `min_step` (the means need some
    steps) nor while the gap is ~0 (the decoder reads nothing yet).
    """
    means[0] += min(1.0, max(0.05, 1.0 / (step + 1))) * (gap - means[0])
    means[1] += 2.0 / (step + 2) * (gap - means[1])
    recent, half = float(means[0]), float(means[1])
    return step >= min_step and recent > MIN_X_GAP and recent - half < plateau * recent


class LabelSchedule(nn.Module):
    """lambda(step) and the phases each step runs; fed the x-gap and the training KL by the model."""

    def __init__(self, cfg: SLCVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("ready_step", torch.tensor(-1, dtype=torch.long))  # the decoder read x (-1: not yet)
        self.register_buffer("start_step", torch.tensor(-1, dtype=torch.long))  # lambda started rising (-1: not yet)
        self.register_buffer("x_gap", torch.zeros(2, dtype=torch.float64))  # [recent, last half of the run]
        self.register_buffer("kl_mean", torch.zeros(2, dtype=torch.float64))  # [EMA sum, EMA weight]

    def ready_at(self) -> int:
        """The step the labels may start: warmup_steps, or for start = "auto" the step the decoder read x (-1: not yet)."""
        return self.cfg.warmup_steps if self.cfg.start == "steps" else int(self.ready_step)

    def started_at(self) -> int:
        """The step lambda starts rising: the ready step, or with the KL gate the first step from there on whose KL
        running mean was below gate_kl (-1: not yet)."""
        return int(self.start_step) if self.cfg.gate_kl > 0 else self.ready_at()

    def full_at(self) -> int:
        """The step lambda reaches full strength, (1 + ramp) s for the start s (-1: not started yet)."""
        start = self.started_at()
        return start + round(self.cfg.ramp * start) if start >= 0 else -1

    def training_kl(self) -> float:
        """The running mean of the training KL (nats per source; an EMA over ~100 steps, bias-corrected)."""
        total, weight = self.kl_mean.tolist()
        return total / weight if weight > 0 else float("inf")

    def gated_off(self) -> bool:
        """The gate holds the labels off: they have not started and z is in use (KL running mean >= gate_kl)."""
        return self.cfg.gate_kl > 0 and self.started_at() < 0 and self.training_kl() >= self.cfg.gate_kl

    def watching(self) -> bool:
        """Whether to measure the x-gap: start = auto, not ready yet, and with the gate only while z goes unused
        (where the labels could not start anyway, the watch would only cost time)."""
        return self.cfg.start == "auto" and self.ready_step < 0 and not self.gated_off()

    def weight(self, step: int, kl_weight: float = 1.0) -> float:
        """lambda at `step`: 0 before the start s, a linear ramp to label_weight at (1 + ramp) s, then constant or a
        linear decay to 0 over label_decay_steps; times the KL-annealing weight `kl_weight` with kl_ramp."""
        s = self.cfg
        start = self.started_at()
        if start < 0 or step < start:
            return 0.0
        full = self.full_at()
        weight = s.label_weight * (min(1.0, (step - start) / (full - start)) if step < full else 1.0)
        if s.label_decay_steps > 0 and step > full:
            weight *= max(0.0, 1.0 - (step - full) / s.label_decay_steps)
        return weight * (kl_weight if s.kl_ramp else 1.0)

    def done(self, step: int) -> bool:
        """A decaying lambda that reached 0: the labels are unused from here on."""
        full, decay = self.full_at(), self.cfg.label_decay_steps
        return decay > 0 and full >= 0 and step >= full + decay

    def phases_at(self, step: int) -> list[str]:
        """Every `label_every` steps the CVAE update, then `label_steps` labeling updates on the same batch; the
        labeling network trains from the start of lambda (or from step 0 with train_labeler_early) until it is done."""
        s = self.cfg
        started = 0 <= self.started_at() <= step
        if self.done(step) or not (started or s.train_labeler_early) or step % s.label_every:
            return ["cvae"]
        return ["cvae"] + ["label"] * s.label_steps

    def observe(self, step: int, progress: float) -> None:
        """Before each step, with the share of the budget spent: a run whose x-gap has not flattened by `start_by`
        of its budget gets ready anyway (in a 1-minute run the decoder reads x long before the gap flattens), but
        only once the decoder reads x at all: labels before that carry the content into z. With the gate, lambda
        starts at the first ready step whose KL running mean is below gate_kl."""
        s = self.cfg
        if s.start == "auto" and self.ready_step < 0 and progress >= s.start_by and float(self.x_gap[0]) > MIN_X_GAP:
            self.ready_step.fill_(step)
        ready = self.ready_at()
        if s.gate_kl > 0 and self.start_step < 0 and 0 <= ready <= step and self.training_kl() < s.gate_kl:
            self.start_step.fill_(step)

    @torch.no_grad()
    def add_kl(self, kl: torch.Tensor) -> None:
        """One step's training KL into the gate's running mean (a bias-corrected EMA, decay 0.99: ~100 steps)."""
        self.kl_mean.mul_(0.99).add_(torch.stack([kl.detach().double(), self.kl_mean.new_ones(())]), alpha=0.01)

    def add_x_gap(self, gap: float, step: int) -> None:
        """One step's x-gap; the step after the one where it stopped growing is the ready step."""
        if x_gap_plateaued(self.x_gap, gap, step, self.cfg.plateau):
            self.ready_step.fill_(step + 1)

    def selectable(self, step: int) -> bool:
        """Whether a checkpoint at `step` may be the best: not while lambda is still rising (a plain CVAE's low-KL
        -ELBO would always win); held off by the gate, the objective is the base's and any step may."""
        full = self.full_at()
        return step >= full if full >= 0 else self.gated_off()

    def summary(self, step: int) -> dict[str, float | None]:
        """What a run's summary reports: where lambda got ready and started (None: not by `step`), the gate, the means."""
        start, ready = self.started_at(), self.ready_at()
        kl = self.training_kl()
        return {
            "label_start_step": start if 0 <= start <= step else None,
            "label_ready_step": ready if 0 <= ready <= step else None,
            "label_gated": self.gated_off(),  # not started, z in use (KL >= gate_kl): so far the run is its base
            "training_kl": round(kl, 4) if kl < float("inf") else None,  # None: no step yet
            "x_gap": float(self.x_gap[0]),
        }
