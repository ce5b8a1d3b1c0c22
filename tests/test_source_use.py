"""Source use (evaluation/source_use.py): nats per target a model takes from its source."""

from __future__ import annotations

import pytest
import torch

from slcvae.config import build_config
from slcvae.data.batching import Encoded
from slcvae.data.tokenizer import TextTokenizer
from slcvae.evaluation.source_use import source_use, swap_sources
from slcvae.models import build_model
from tests import sizes

SMALL = [*sizes.LEGACY[:2], *sizes.SMALL]


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(["a b c d e f g", "h i j k"], mode="word")


def data(n=7):
    return Encoded(turns=[[[4 + i % 7, 5 + i % 5]] for i in range(n)], targets=[[4 + i % 7, 9] for i in range(n)])


def test_the_swap_is_a_seeded_cycle_in_which_no_example_keeps_its_source():
    d = Encoded(turns=[[[i]] for i in range(50)], targets=[[i] for i in range(50)])
    swapped = swap_sources(d)
    sources = [t[0][0] for t in swapped.turns]
    assert sorted(sources) == list(range(50)) and all(s != i for i, s in enumerate(sources))
    i, seen = 0, set()  # one cycle through all 50
    while i not in seen:
        seen.add(i)
        i = sources[i]
    assert len(seen) == 50
    assert [t[0][0] for t in swap_sources(d).turns] == sources and swapped.targets == d.targets


def test_a_model_that_ignores_its_source_takes_exactly_zero_nats(tok):
    torch.manual_seed(0)
    lm = build_model(build_config("lm", sets=SMALL), tok.vocab_size, tok.unk_id)
    assert source_use(lm, data(), tok, batch_size=3) == 0.0


@pytest.mark.parametrize("name", ["seq2seq", "cvae", "slcvae"])
def test_source_use_is_the_loss_with_a_swapped_source_minus_with_its_own(tok, name):
    from slcvae.data.batching import collate

    torch.manual_seed(0)
    model = build_model(build_config(name, sets=[*SMALL, "model.attention=true"]), tok.vocab_size, tok.unk_id).eval()
    d = data(5)
    got = source_use(model, d, tok, batch_size=8)  # one batch: its rows in length order
    order = sorted(range(5), key=lambda i: d.lengths()[i])

    @torch.no_grad()
    def loss(x):
        torch.manual_seed(0)
        _, losses = model(collate(x, order, tok), step=10**9, phase=model.phases[0])
        return float(losses["rec"] + losses.get("kl", 0.0))

    assert got == pytest.approx(loss(swap_sources(d)) - loss(d), abs=1e-5)
    assert got != 0.0
    assert source_use(model, Encoded(d.turns[:1], d.targets[:1]), tok, batch_size=8) == 0.0
