from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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
