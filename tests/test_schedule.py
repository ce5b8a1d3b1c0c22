"""SLCVAE's lambda schedule on its own: no model, only the config and the signals the model feeds it."""

from __future__ import annotations

import dataclasses

import torch

from slcvae.config import SLCVAEConfig
from slcvae.models.schedule import LabelSchedule


def schedule(**fields) -> LabelSchedule:
    return LabelSchedule(dataclasses.replace(SLCVAEConfig(), **fields))


def test_fixed_start_ramps_then_decays_and_stops_labeling():
    lam = schedule(start="steps", warmup_steps=4, ramp=0.5, label_weight=2.0, label_decay_steps=4, gate_kl=0.0)
    # start 4, full at 6, then 2 -> 0 over 4 steps, and the labeling phase stops with it
    assert [lam.weight(s) for s in range(3, 12)] == [0.0, 0.0, 1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    assert [lam.phases_at(s) for s in (3, 4, 9, 10)] == [["cvae"], ["cvae", "label"], ["cvae", "label"], ["cvae"]]
    assert [lam.selectable(s) for s in (5, 6)] == [False, True]  # best.pt only once lambda is full
    assert lam.weight(6, kl_weight=0.5) == 2.0  # beta matters only with kl_ramp
    assert schedule(start="steps", warmup_steps=0, kl_ramp=True, gate_kl=0.0).weight(5, kl_weight=0.5) == 0.5


def test_auto_start_waits_for_the_decoder_to_read_x_then_for_the_budget():
    lam = schedule(gate_kl=0.0, start_by=0.5)
    lam.observe(10, 0.6)
    assert lam.started_at() == -1  # half the budget spent, but the x-gap is 0: x is not read yet
    for step in range(40):
        lam.add_x_gap(0.002 * step, step)  # still growing: no plateau
    lam.observe(40, 0.49)
    assert lam.started_at() == -1
    lam.observe(41, 0.5)
    assert lam.started_at() == 41 and lam.summary(41)["label_ready_step"] == 41
    lam.observe(90, 0.9)
    assert lam.started_at() == 41  # set once


def test_the_kl_gate_holds_lambda_until_z_goes_unused_then_keeps_it_on():
    lam = schedule(start="steps", warmup_steps=100, ramp=0.5, gate_kl=0.5)
    for _ in range(50):
        lam.add_kl(torch.tensor(3.0))
    assert abs(lam.training_kl() - 3.0) < 1e-12  # bias-corrected: a constant KL is its own mean
    lam.observe(150, 0.1)
    assert lam.gated_off() and lam.weight(150) == 0.0 and lam.phases_at(150) == ["cvae"] and lam.selectable(150)
    lam.kl_mean.copy_(torch.tensor([0.2, 1.0], dtype=torch.float64))
    lam.observe(200, 0.2)
    assert (lam.started_at(), lam.full_at()) == (200, 300) and [lam.weight(s) for s in (250, 300)] == [0.5, 1.0]
    lam.kl_mean.copy_(torch.tensor([9.0, 1.0], dtype=torch.float64))
    lam.observe(400, 0.4)
    assert lam.started_at() == 200 and not lam.gated_off()
