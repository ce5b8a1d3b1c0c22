from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("mode_shares", Path(__file__).parents[1] / "bench" / "mode_shares.py")
mode_shares = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mode_shares)


def test_chance_of_showing_every_target_matches_enumeration():
    # 4 targets, 10 draws: 1 - 4 (3/4)^10 + 6 (1/2)^10 - 4 (1/4)^10
    assert mode_shares.all_shown(4, 10) == pytest.approx(1 - 4 * 0.75**10 + 6 * 0.5**10 - 4 * 0.25**10)
    assert mode_shares.all_shown(2, 2) == pytest.approx(0.5)  # AB or BA of AA, AB, BA, BB
    assert mode_shares.all_shown(3, 2) == pytest.approx(0, abs=1e-12)  # 2 draws cannot show 3 targets


def test_shares_count_targets_shown_per_source():
    test = [{"source": "x", "targets": ["a", "b"]}, {"source": "y", "targets": ["c", "d", "e"]}]
    preds = [{"source": "x", "samples": ["a", "b", "a", "zz"]}, {"source": "y", "samples": ["e", "e", "e", "e"]}]
    share, shown, full, expected = mode_shares.shares(test, preds)
    assert share == [2 / 7, 1 / 7, 4 / 7]  # by position in each source's target list; "zz" is not a target
    assert dict(shown) == {2: 1, 1: 1} and full == 1
    assert expected == pytest.approx(mode_shares.all_shown(2, 4) + mode_shares.all_shown(3, 4))
    with pytest.raises(ValueError, match="prediction for 'y'"):
        mode_shares.shares(test, preds[::-1])


_spec_lm = importlib.util.spec_from_file_location("latent_modes", Path(__file__).parents[1] / "bench" / "latent_modes.py")
latent_modes = importlib.util.module_from_spec(_spec_lm)
_spec_lm.loader.exec_module(latent_modes)


def test_rank_correlation_exact_on_tiny_inputs():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert latent_modes.spearman(a, 10 * a) == pytest.approx(1.0)
    assert latent_modes.spearman(a, -a) == pytest.approx(-1.0)
    assert latent_modes.spearman(a, torch.tensor([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)  # 1 - 6 * 4 / (4 * 15)


def test_latent_modes_shares_of_a_two_target_source_add_up():
    from slcvae.config import build_config
    from slcvae.data.corpus import Example
    from slcvae.data.tokenizer import TextTokenizer
    from slcvae.models import build_model
    from tests.test_models import SMALL

    tok = TextTokenizer.train(["a b c d e f g", "h i j k"], mode="word")
    cfg = build_config("cvae", sets=SMALL)
    model = build_model(cfg, tok.vocab_size, tok.unk_id).eval()
    stats = latent_modes.source_stats(model, tok, cfg.data, Example(("a b c",), ["d e", "f g"]), draws=40)
    assert stats["k"] == 2
    # with two targets the least and the most drawn shares and the unmatched draws partition all 40 draws
    assert stats["min"] + stats["max"] + stats["invalid"] == pytest.approx(1.0)
    assert stats["near_min"] + stats["near_max"] == pytest.approx(1.0) and stats["near_min"] <= 0.5
    assert stats["dist"] > 0 and stats["dist_ratio"] >= 1.0 and stats["width"] > 0
