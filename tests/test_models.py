from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from slcvae.config import build_config
from slcvae.data.batching import Encoded, collate
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError
from slcvae.models import SLCVAE, build_model
from slcvae.models.modules import gaussian_nll, kl
from slcvae.models.schedule import x_gap_plateaued
from tests import sizes

SMALL = [*sizes.LEGACY[:2], *sizes.SMALL, "slcvae.gate_kl=0"]


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(["a b c d e f g", "h i j k"], mode="word")


def batch(tok, n=3):
    data = Encoded(
        turns=[[[4, 5, 6], [7]], [[8, 9]], [[5]]][:n],
        targets=[[4, 5, 6, 7, 8], [9], [10, 11]][:n],
    )
    return collate(data, range(n), tok)


def make(name, tok, *sets):
    cfg = build_config(name, sets=[*SMALL, *sets])
    return build_model(cfg, tok.vocab_size, tok.unk_id)


def test_kl_matches_torch_distributions():
    mu_q, lv_q, mu_p, lv_p = torch.randn(4, 3, 5).unbind(1)[0], torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    expected = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(mu_p, (0.5 * lv_p).exp()))
    assert torch.allclose(kl(mu_q, lv_q, mu_p, lv_p), expected, atol=1e-5)
    z = torch.randn(4, 5)
    assert torch.allclose(gaussian_nll(z, mu_p, lv_p), -Normal(mu_p, (0.5 * lv_p).exp()).log_prob(z).sum(-1), atol=1e-5)


def uniform_batch(tok):
    """Every turn and target of the same length: the RNNs take their unpacked fast path."""
    data = Encoded(turns=[[[4, 5, 6]], [[8, 9, 10]]], targets=[[4, 5], [9, 7]])
    return collate(data, range(2), tok)


@pytest.mark.parametrize("make_batch", [batch, uniform_batch])
def test_decoder_nll_skips_padding_but_equals_padded_loss(tok, make_batch):
    model = make("seq2seq", tok)
    b = make_batch(tok)
    ctx = model.encoder.source(b)
    ours = model.decoder.nll(ctx, b.target, b.target_lens)
    # reference: full padded logits, loss masked afterwards
    states, _ = model.decoder.rnn(model.decoder.embed(b.target[:, :-1]), model.decoder.init_state(ctx).h)
    full = F.cross_entropy(model.decoder.out(states).transpose(1, 2), b.target[:, 1:], reduction="none")
    mask = torch.arange(b.target.shape[1] - 1) < (b.target_lens - 1).unsqueeze(1)
    assert torch.allclose(ours, (full * mask).sum(1), atol=1e-5)


def test_decoder_nll_rejects_conditioning_rows_that_do_not_match_the_targets(tok):
    """A packed GRU reads h0 in the targets' sorted order: 4 cond rows for 3 targets would run silently."""
    model = make("seq2seq", tok)
    b = batch(tok)
    ctx = model.encoder.source(b)
    with pytest.raises(ValueError, match="cond has 4 rows, target 3"):
        model.decoder.nll(torch.cat([ctx, ctx[:1]]), b.target, b.target_lens)
    with pytest.raises(ValueError, match="cond has 2 rows, target 3"):
        model.decoder.nll(ctx[:2], b.target, b.target_lens)


@pytest.mark.parametrize("name", ["seq2seq", "cvae", "cvae-anneal", "cvae-freebits", "cvae-wdrop", "cvae-bow", "slcvae"])
def test_every_model_trains_one_step_and_decodes(tok, name):
    model = make(name, tok)
    b = batch(tok)
    for phase in model.phases:
        _, losses = model(b, step=10_000, phase=phase)
        assert losses["loss"].ndim == 0 and torch.isfinite(losses["loss"])
        losses["loss"].backward()
    h = model.init_state(b, 5)
    assert h.h.shape == (1, 3 * 5, 10)
    logits, h2 = model.step(torch.full((15,), tok.bos_id), h)
    assert logits.shape == (15, tok.vocab_size) and h2.h.shape == h.h.shape


@pytest.mark.parametrize("name", ["seq2seq", "cvae", "slcvae"])
def test_two_layer_grus_train_and_decode(tok, name):
    """model.layers = 2 (the paper's depth): every GRU stacks two layers and the decoder starts each from [x; z]."""
    model = make(name, tok, "model.layers=2")
    assert all(rnn.num_layers == 2 for rnn in model.modules() if isinstance(rnn, torch.nn.GRU))
    b = batch(tok)
    for phase in model.phases:
        _, losses = model(b, step=10_000, phase=phase)
        losses["loss"].backward()
    assert all(p.grad is not None for p in model.decoder.rnn.parameters())
    h = model.init_state(b, 5)
    assert h.h.shape == (2, 3 * 5, 10)
    logits, h2 = model.step(torch.full((15,), tok.bos_id), h)
    assert logits.shape == (15, tok.vocab_size) and h2.h.shape == h.h.shape


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_context_norm_keeps_the_shared_part_of_the_gradient_from_the_encoder(tok, norm):
    """A loss asking every source for the same context vector (what a decoder that has not learned to read x
    asks for) trains the encoder without the norm and leaves it untouched with it; a loss that tells sources
    apart reaches it either way. In evaluation the norm is a fixed affine map (running statistics)."""
    torch.manual_seed(0)
    enc = make("seq2seq", tok, f"model.context_norm={norm}").encoder.train()
    b = batch(tok)
    shared = torch.randn(12)
    (enc.source(b) @ shared).sum().backward()
    g = torch.cat([p.grad.flatten() for p in enc.utterance.parameters()])
    assert (g.abs().max() < 1e-5) == (norm == "batch")  # batch norm: 0 up to float rounding (~1e-6 at one thread)
    enc.zero_grad()
    (enc.source(b)[0] @ shared).backward()  # the first source alone: its difference from the others
    assert torch.cat([p.grad.flatten() for p in enc.utterance.parameters()]).abs().max() > 1e-4
    enc.eval()
    one = collate(Encoded(turns=[[[5]]], targets=[[10, 11]]), range(1), tok)
    assert torch.allclose(enc.source(one), enc.source(b)[2:3], atol=1e-6)  # per source, whatever the batch
    enc.train()
    assert enc.source(one).shape == (1, 12)  # a one-source training batch does not raise


def grads(module):
    return {n: p.grad for n, p in module.named_parameters()}


def test_labeling_phase_trains_only_the_labeler(tok):
    # free labels (label_base = none): every labeler layer gets gradient from the first step
    model = make("slcvae", tok, "slcvae.label_base=none")
    assert isinstance(model, SLCVAE)
    out, losses = model(batch(tok), phase="label")
    assert set(losses) == {"recovery", "loss"}
    losses["loss"].backward()
    assert_only_the_labeler_learned(model)
    assert all(p.requires_grad for p in model.parameters())  # frozen() restored the flags


def assert_only_the_labeler_learned(model):
    """After a labeling phase's backward: every labeler parameter has a gradient, no other parameter has one."""
    labeler = set(model.labeler.parameters())
    for name, p in model.named_parameters():
        if p in labeler:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"labeler {name} got no gradient"
        else:
            assert p.grad is None, f"{name} got a gradient in the labeling phase"


def test_removed_knobs_name_the_commit_that_has_them(tok, tmp_path):
    """Knobs the studies rejected are gone: setting one says which commit still has it; a saved run that had one
    switched off loads as before."""
    from slcvae.config import REMOVED_AT, Config

    with pytest.raises(InputError, match=rf"slcvae.label_fade = 0.4: removed .*commit {REMOVED_AT}"):
        make("slcvae", tok, "slcvae.label_fade=0.4")
    saved = build_config("slcvae").to_dict()
    saved["slcvae"].update(label_prior=0.0, watch_every=1)  # written by a version that had them, off
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert Config.load(tmp_path / "config.json") == build_config("slcvae")
    saved["slcvae"]["label_prior"] = 0.5
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(InputError, match=r"slcvae.label_prior = 0.5: removed"):
        Config.load(tmp_path / "config.json")


def test_cvae_phase_leaves_the_labeler_alone(tok):
    model = make("slcvae", tok)
    _, losses = model(batch(tok), phase="cvae")
    assert set(losses) == {"rec", "kl", "bow", "label", "loss", "x_gap"}  # bow: the preset's base; x_gap: until lambda starts
    losses["loss"].backward()
    labeler = set(model.labeler.parameters())
    assert all(p.grad is None for p in labeler)
    for part in (model.decoder, model.prior, model.posterior, model.encoder):
        assert all(p.grad is not None for p in part.parameters() if p is not part and p not in labeler)


def test_label_is_bounded_and_schedule_alternates(tok):
    sets = ("slcvae.label_bound=0.5", "slcvae.start=steps", "slcvae.warmup_steps=3", "slcvae.label_every=2",
            "slcvae.label_steps=2")  # fmt: skip
    model = make("slcvae", tok, *sets)
    out, _ = model(batch(tok), phase="label")
    assert out["z_star"].abs().max() <= 0.5
    # the labeling network starts with lambda (step 3), then every 2nd step, 2 updates each
    assert [model.phases_at(s) for s in range(0, 7)] == [
        ["cvae"],
        ["cvae"],
        ["cvae"],
        ["cvae"],
        ["cvae", "label", "label"],
        ["cvae"],
        ["cvae", "label", "label"],
    ]
    early = make("slcvae", tok, *sets, "slcvae.train_labeler_early=true")  # from step 0, before lambda starts
    assert [early.phases_at(s) for s in range(0, 3)] == [["cvae", "label", "label"], ["cvae"], ["cvae", "label", "label"]]


def test_label_weight_ramps_in_from_the_start_step(tok):
    model = make("slcvae", tok, "slcvae.start=steps", "slcvae.warmup_steps=100", "slcvae.ramp=0.5", "slcvae.label_weight=2.0")
    assert [model.label_weight(s) for s in (0, 99, 100, 125, 150, 400)] == [0.0, 0.0, 0.0, 1.0, 2.0, 2.0]
    assert not model.selectable(149) and model.selectable(150)  # best.pt only once lambda is full
    jump = make("slcvae", tok, "slcvae.start=steps", "slcvae.warmup_steps=100", "slcvae.ramp=0.0")
    assert [jump.label_weight(s) for s in (99, 100)] == [0.0, 1.0]
    auto = make("slcvae", tok)  # start = auto: nothing until the x-gap plateau sets start_step
    assert auto.label_weight(10_000) == 0.0 and not auto.selectable(10_000)
    assert auto.schedule(10_000) == {"label_start_step": None, "label_ready_step": None, "label_gated": False,
                                     "training_kl": None, "x_gap": 0.0}  # fmt: skip
    auto.label_schedule.ready_step.fill_(200)
    assert auto.schedule(150)["label_start_step"] is None and auto.schedule(250)["label_start_step"] == 200
    assert [auto.label_weight(s) for s in (199, 250, 300)] == [0.0, 0.5, 1.0]  # ramp 0.5: full at 1.5 x the start
    keys = {f"label_schedule.{k}" for k in ("ready_step", "start_step", "x_gap", "kl_mean")}
    assert keys <= set(auto.state_dict())  # saved: a resumed run keeps its schedule
    old = {k.removeprefix("label_schedule."): v for k, v in auto.state_dict().items()}  # saved before the module
    again = make("slcvae", tok)
    again.load_state_dict(old)
    assert again.schedule(250)["label_start_step"] == 200
    short = make("slcvae", tok)  # a run whose x-gap has not flattened starts once half its budget is spent,
    short.observe(41, 0.5)
    assert short.label_schedule.started_at() == -1  # but not while the decoder ignores x (x-gap 0)
    short.label_schedule.x_gap[0] = 0.3
    short.observe(40, 0.49)
    assert short.label_schedule.started_at() == -1
    short.observe(41, 0.5)
    assert short.label_schedule.started_at() == 41
    short.observe(90, 0.9)
    assert short.label_schedule.started_at() == 41  # the start is set once


def test_kl_ramp_multiplies_lambda_by_beta(tok):
    model = make("slcvae", tok, "slcvae.start=steps", "slcvae.warmup_steps=0", "slcvae.kl_ramp=true",
                 "cvae.kl_anneal=linear", "cvae.anneal_steps=100")  # fmt: skip
    assert [model.label_weight(s) for s in (0, 50, 100, 200)] == [0.0, 0.5, 1.0, 1.0]


def gap_start(gaps, plateau=0.1):
    """The first step at which x_gap_plateaued fires for a sequence of x-gap values, one per step (None: never)."""
    means = torch.zeros(2, dtype=torch.float64)
    return next((t for t, g in enumerate(gaps) if x_gap_plateaued(means, g, t, plateau)), None)


def test_x_gap_plateau_fires_when_the_gap_flattens_at_any_time_scale():
    # a gap that saturates with time constant T fires a few T later, whatever T: the rule scales with the run
    for tau in (100, 400, 1600):
        start = gap_start([0.6 * (1 - math.exp(-t / tau)) for t in range(30 * tau)])
        assert start is not None and 2 * tau < start < 8 * tau, (tau, start)
    assert gap_start([0.001 * t for t in range(5000)]) is None  # still growing linearly: never
    assert gap_start([0.0] * 5000) is None  # the decoder reads nothing from x: never
    assert gap_start([0.5] * 500) == 100  # flat from the outset: at the noise guard


@pytest.mark.parametrize(
    ("distance", "expected"),
    [
        ("mean_sq", lambda o, z: ((o["mu_q"] - z) ** 2).sum(-1)),
        ("sample_sq", lambda o, z: ((o["z"] - z) ** 2).sum(-1)),
        ("nll", lambda o, z: -Normal(o["mu_q"], (0.5 * o["logvar_q"]).exp()).log_prob(z).sum(-1)),
    ],
)
def test_labeling_distance(tok, distance, expected):
    model = make("slcvae", tok, f"slcvae.distance={distance}")
    out, losses = model(batch(tok), phase="cvae")
    assert losses["label"].item() == pytest.approx(expected(out, out["z_star"]).mean().item(), rel=1e-5)


def test_kl_annealing_and_free_bits(tok):
    lin = make("cvae-anneal", tok, "cvae.anneal_steps=100")
    assert [lin.kl_weight(s) for s in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    held = make("cvae", tok, "cvae.kl_anneal=linear", "cvae.anneal_steps=100", "cvae.anneal_hold=40")
    assert [held.kl_weight(s) for s in (0, 40, 90, 140, 500)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    cyc = make("cvae", tok, "cvae.kl_anneal=cyclical", "cvae.anneal_steps=100", "cvae.anneal_ratio=0.5")
    assert [cyc.kl_weight(s) for s in (0, 25, 50, 99, 100, 125)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    fb = make("cvae", tok, "cvae.free_bits=100.0")
    fb.eval()
    torch.manual_seed(0)
    _, losses = fb(batch(tok))
    # every dimension is under the floor: the KL term is the constant floor (4 dims x 100 nats)
    assert (losses["loss"] - losses["rec"]).item() == pytest.approx(400.0)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("lens", [[4, 4, 4], [4, 2, 4], [30, 1, 4, 3, 2, 7, 2, 3]])
def test_padded_final_state_equals_packed_rnn(bidirectional, lens):
    """The padded GRU (with a split into two length groups for the 8-row case) gives a packed GRU's top-layer
    final states and the same gradients, to float rounding."""
    from torch.nn.utils.rnn import pack_padded_sequence

    from slcvae.models.modules import _best_cut, final_state

    torch.manual_seed(0)
    rnn = torch.nn.GRU(5, 7, num_layers=2, batch_first=True, bidirectional=bidirectional)
    lens = torch.tensor(lens)
    x = torch.randn(len(lens), int(lens.max()), 5, requires_grad=True)
    packed = rnn(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))[1][-(2 if bidirectional else 1) :]
    ours = final_state(rnn, x, lens)
    assert ours.shape == packed.shape == ((2 if bidirectional else 1), len(lens), 7)
    assert torch.allclose(ours, packed, atol=1e-6)
    weight = torch.randn_like(packed)
    params = [x, *rnn.parameters()]
    expected, got = (torch.autograd.grad((h * weight).sum(), params) for h in (packed, ours))
    for a, b in zip(expected, got, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # the padding is never read: a shorter length changes the states
    if int(lens.min()) < int(lens.max()):
        assert not torch.allclose(ours, final_state(rnn, x, lens.clamp(min=int(lens.max()))), atol=1e-4)
    assert _best_cut(lens.sort().values) == (7 if len(lens) == 8 else 0)  # 8 rows: 7 x 7 + 1 x 30 padded cells, not 8 x 30


def test_importance_weighted_bound(tok):
    torch.manual_seed(0)
    b = batch(tok)
    seq = make("seq2seq", tok)
    _, losses = seq(b)
    assert seq.log_likelihood(b, 5).mean().item() == pytest.approx(-losses["rec"].item(), rel=1e-6)  # exact, no latent
    model = make("cvae", tok).eval()
    with torch.no_grad():
        elbo = torch.stack([model(b)[1]["rec"] + model(b)[1]["kl"] for _ in range(200)]).mean()
        iw1 = torch.stack([model.log_likelihood(b, 1).mean() for _ in range(200)]).mean()
        iw50 = torch.stack([model.log_likelihood(b, 50).mean() for _ in range(20)]).mean()
    assert -iw1.item() == pytest.approx(elbo.item(), rel=0.02)  # K = 1 is the ELBO
    assert iw50.item() > iw1.item()  # more samples: a tighter (higher) bound


def test_label_weight_decays_then_labeling_stops(tok):
    model = make("slcvae", tok, "slcvae.start=steps", "slcvae.warmup_steps=2", "slcvae.ramp=0.0",
                 "slcvae.label_decay_steps=4", "slcvae.label_weight=2.0")  # fmt: skip
    assert [model.label_weight(s) for s in range(8)] == [0.0, 0.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    assert [model.phases_at(s) for s in (1, 2, 5, 6)] == [["cvae"], ["cvae", "label"], ["cvae", "label"], ["cvae"]]


def test_the_kl_gate_holds_the_labels_off_while_z_is_in_use(tok):
    """gate_kl: from the ready step on, lambda starts at the first step whose KL running mean is below the gate,
    ramps from there and stays on; until then the run is its base (no labeling phase, selectable for best.pt)."""
    model = make("slcvae", tok, "slcvae.start=steps", "slcvae.warmup_steps=100", "slcvae.ramp=0.5", "slcvae.gate_kl=0.5")
    model.label_schedule.kl_mean.copy_(torch.tensor([3.0, 1.0], dtype=torch.float64))  # KL 3 nats: z in use
    assert model.label_schedule.training_kl() == 3.0
    for step in (50, 100, 150):
        model.observe(step, 0.1)
    assert model.label_schedule.started_at() == -1 and model.label_weight(150) == 0.0 and model.phases_at(150) == ["cvae"]
    assert model.label_schedule.gated_off() and model.selectable(150)  # the objective is the base's: best.pt may be kept
    assert model.schedule(150)["label_gated"] and model.schedule(150)["label_ready_step"] == 100
    lam = model.label_schedule
    lam.kl_mean.copy_(torch.tensor([0.2, 1.0], dtype=torch.float64))  # z went unused: the labels start here
    model.observe(200, 0.2)
    assert lam.started_at() == 200 and lam.full_at() == 300 and not lam.gated_off()
    assert [model.label_weight(s) for s in (199, 250, 300)] == [0.0, 0.5, 1.0]
    assert model.phases_at(200) == ["cvae", "label"] and not model.selectable(250) and model.selectable(300)
    model.label_schedule.kl_mean.copy_(torch.tensor([9.0, 1.0], dtype=torch.float64))  # once on, they stay on
    model.observe(400, 0.4)
    assert model.label_schedule.started_at() == 200 and model.label_weight(400) == 1.0
    # the running mean: a bias-corrected EMA of the training batches' KL
    fresh = make("slcvae", tok, "slcvae.gate_kl=0.5")
    fresh.train()
    _, first = fresh(batch(tok), 0)
    assert fresh.label_schedule.training_kl() == pytest.approx(first["kl"].item(), rel=1e-6)  # bias-corrected: one step is its KL
    _, losses = fresh(batch(tok), 1)
    assert fresh.label_schedule.training_kl() == pytest.approx(losses["kl"].item(), rel=0.1)
    # start = auto: the x-gap watch (a decoder pass) runs only while z goes unused
    assert "x_gap" in first if first["kl"].item() < 0.5 else "x_gap" not in first
    fresh.label_schedule.kl_mean.copy_(torch.tensor([3e6, 1e6], dtype=torch.float64))  # KL 3 for a long while: z in use
    calls = []
    fresh.labeler.register_forward_hook(lambda *args: calls.append(1))
    out, losses = fresh(batch(tok), 2)
    assert "x_gap" not in losses and fresh.label_schedule.gated_off()
    assert calls == [] and "label" not in losses and "z_star" not in out  # gated: g is not even run (round 13)
    fresh.label_schedule.kl_mean.copy_(torch.tensor([0.0, 1e6], dtype=torch.float64))  # KL 0: z unused, the watch runs
    out, losses = fresh(batch(tok), 3)
    assert "x_gap" in losses and calls == [1] and out["z_star"].shape == (3, 4) and losses["label"].item() > 0


def test_labeling_phase_reuses_the_cvae_phases_encodings(tok):
    model, b = make("slcvae", tok), batch(tok)
    model(b, phase="cvae")
    assert model.encoded[0] is b and not model.encoded[1].requires_grad
    cached = model(b, phase="label")[1]["recovery"]
    model.encoded = None  # what a labeling phase without a CVAE phase before it computes
    assert cached.item() == pytest.approx(model(b, phase="label")[1]["recovery"].item(), rel=1e-6)
    # b's rows in reverse: reading b's cached encodings would pair every target with another row's x and y
    other = collate(Encoded(turns=[[[5]], [[8, 9]], [[4, 5, 6], [7]]], targets=[[10, 11], [9], [4, 5, 6, 7, 8]]), range(3), tok)
    model(b, phase="cvae")  # the cache holds b's encodings; a labeling phase on another batch must not read them
    via_cache = model(other, phase="label")[1]["recovery"]
    model.encoded = None
    assert via_cache.item() == pytest.approx(model(other, phase="label")[1]["recovery"].item(), rel=1e-6)


def test_posterior_based_labels_start_on_q_and_pay_for_their_move(tok):
    model, b = make("slcvae", tok, "slcvae.label_base=posterior", "slcvae.label_move=0.5", "slcvae.label_bound=0.5"), batch(tok)
    model(b, phase="cvae")
    mu_q = model.encoded[3]  # [batch, latent], q's mean from the CVAE phase, detached
    with pytest.raises(ValueError, match="needs q's mean"):
        model.labeler(b, model.encoded[1], model.encoded[2])
    out, losses = model(b, phase="label")
    # g's last layer starts at 0, so a label is q's mean, bounded like every label: B tanh(mu_q / B)
    assert torch.allclose(out["z_star"], 0.5 * torch.tanh(mu_q / 0.5), atol=1e-6)
    assert set(losses) == {"recovery", "move", "loss"}
    move = ((out["z_star"] - mu_q) ** 2).sum(-1).mean()
    assert losses["move"].item() == pytest.approx(move.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(losses["recovery"].item() + 0.5 * move.item(), rel=1e-5)
    losses["loss"].backward()
    last = set(model.labeler.net[-1].parameters())
    for name, p in model.named_parameters():
        if p in last:  # the zero layer learns first; the layers before it get gradient once it is nonzero
            assert p.grad is not None and p.grad.abs().sum() > 0, f"labeler {name} got no gradient"
        elif p.grad is not None:
            assert p in set(model.labeler.parameters()), f"{name} got a gradient in the labeling phase"
