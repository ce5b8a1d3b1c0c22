from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from slcvae.config import build_config
from slcvae.data.batching import Encoded, collate
from slcvae.data.tokenizer import TextTokenizer
from slcvae.models import SLCVAE, build_model
from slcvae.models.modules import gaussian_nll, kl

SMALL = ["model.embedding=8", "model.utterance=8", "model.context=12", "model.latent=4", "model.decoder=10", "model.mlp=8"]


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
    states, _ = model.decoder.rnn(model.decoder.embed(b.target[:, :-1]), model.decoder.init_state(ctx))
    full = F.cross_entropy(model.decoder.out(states).transpose(1, 2), b.target[:, 1:], reduction="none")
    mask = torch.arange(b.target.shape[1] - 1) < (b.target_lens - 1).unsqueeze(1)
    assert torch.allclose(ours, (full * mask).sum(1), atol=1e-5)


@pytest.mark.parametrize("name", ["seq2seq", "cvae", "cvae-anneal", "cvae-freebits", "cvae-wdrop", "cvae-bow", "slcvae"])
def test_every_model_trains_one_step_and_decodes(tok, name):
    model = make(name, tok)
    b = batch(tok)
    for phase in model.phases:
        _, losses = model(b, step=10_000, phase=phase)
        assert losses["loss"].ndim == 0 and torch.isfinite(losses["loss"])
        losses["loss"].backward()
    h = model.init_state(b, 5)
    assert h.shape == (1, 3 * 5, 10)
    logits, h2 = model.step(torch.full((15,), tok.bos_id), h)
    assert logits.shape == (15, tok.vocab_size) and h2.shape == h.shape


def grads(module):
    return {n: p.grad for n, p in module.named_parameters()}


def test_labeling_phase_trains_only_the_labeler(tok):
    model = make("slcvae", tok)
    assert isinstance(model, SLCVAE)
    _, losses = model(batch(tok), phase="label")
    losses["loss"].backward()
    labeler = set(model.labeler.parameters())
    for name, p in model.named_parameters():
        if p in labeler:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"labeler {name} got no gradient"
        else:
            assert p.grad is None, f"{name} got a gradient in the labeling phase"
    assert all(p.requires_grad for p in model.parameters())  # frozen() restored the flags


def test_cvae_phase_leaves_the_labeler_alone(tok):
    model = make("slcvae", tok)
    _, losses = model(batch(tok), phase="cvae")
    assert set(losses) == {"rec", "kl", "label", "loss"}
    losses["loss"].backward()
    labeler = set(model.labeler.parameters())
    assert all(p.grad is None for p in labeler)
    for part in (model.decoder, model.prior, model.posterior, model.encoder):
        assert all(p.grad is not None for p in part.parameters() if p is not part and p not in labeler)


def test_label_is_bounded_and_schedule_alternates(tok):
    model = make("slcvae", tok, "slcvae.label_bound=0.5", "slcvae.warmup_steps=3", "slcvae.label_every=2", "slcvae.label_steps=2")
    out, _ = model(batch(tok), phase="label")
    assert out["z_star"].abs().max() <= 0.5
    assert [model.phases_at(s) for s in range(2, 7)] == [
        ["cvae"],
        ["label", "label", "cvae"],
        ["cvae"],
        ["label", "label", "cvae"],
        ["cvae"],
    ]


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
    cyc = make("cvae", tok, "cvae.kl_anneal=cyclical", "cvae.anneal_steps=100", "cvae.anneal_ratio=0.5")
    assert [cyc.kl_weight(s) for s in (0, 25, 50, 99, 100, 125)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    fb = make("cvae", tok, "cvae.free_bits=100.0")
    fb.eval()
    torch.manual_seed(0)
    _, losses = fb(batch(tok))
    # every dimension is under the floor: the KL term is the constant floor (4 dims x 100 nats)
    assert (losses["loss"] - losses["rec"]).item() == pytest.approx(400.0)


def test_unpacked_fast_path_equals_packed_rnn():
    from torch.nn.utils.rnn import pack_padded_sequence

    from slcvae.models.modules import final_state

    rnn = torch.nn.GRU(5, 7, batch_first=True, bidirectional=True)
    x, lens = torch.randn(3, 4, 5), torch.full((3,), 4)
    packed = rnn(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))[1]
    assert torch.allclose(final_state(rnn, x, lens), packed, atol=1e-6)
    # a shorter sequence must not read the padding: the packed path is taken
    short = torch.tensor([4, 2, 4])
    expected = rnn(pack_padded_sequence(x, short, batch_first=True, enforce_sorted=False))[1]
    assert torch.allclose(final_state(rnn, x, short), expected, atol=1e-6)
    assert not torch.allclose(final_state(rnn, x, short), packed, atol=1e-6)


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
    model = make("slcvae", tok, "slcvae.warmup_steps=2", "slcvae.label_decay_steps=4", "slcvae.label_weight=2.0")
    assert [model.label_weight(s) for s in range(8)] == [0.0, 0.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    assert [model.phases_at(s) for s in (1, 2, 5, 6)] == [["cvae"], ["label", "cvae"], ["label", "cvae"], ["cvae"]]
