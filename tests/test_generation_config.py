"""The one declaration of decoding options: names, aliases, ranges, mode selection, legacy specs, distinct outputs."""

from __future__ import annotations

import dataclasses

import pytest

from slcvae.errors import InputError
from slcvae.generation.config import SPELL_CLI, GenerationConfig, build, for_model, from_legacy
from slcvae.generation.decode import fill_distinct


def test_the_package_exports_the_one_declaration():
    import slcvae

    assert slcvae.GenerationConfig is GenerationConfig


def test_the_mode_follows_the_options():
    modes = [({}, "greedy"), ({"do_sample": True}, "sample"), ({"num_beams": 4}, "beam"),
             ({"num_beam_groups": 2}, "diverse_beam"), ({"lm": "runs/lm", "num_beams": 6}, "mmi")]  # fmt: skip
    assert [build(options).decode for options, _ in modes] == [mode for _, mode in modes]
    assert for_model("seq2seq").decode == "beam" and for_model("cvae").decode == "greedy"


def test_errors_name_the_option_as_the_caller_spelled_it():
    with pytest.raises(InputError, match=r"^n: must be >= 1, got 0$"):
        build({"n": 0})
    with pytest.raises(InputError, match=r"^--num-return-sequences: must be >= 1, got 0$"):
        build({"num_return_sequences": 0}, spell=SPELL_CLI)
    with pytest.raises(InputError, match=r"^--top-p: must be <= 1, got 1.5$"):
        build({"top_p": 1.5}, spell=SPELL_CLI)
    with pytest.raises(InputError, match=r"^latent: must be one of prior, posterior, got 'z'$"):
        build({"latent": "z"})
    with pytest.raises(InputError, match=r"^num_beams: beam search does not sample: drop do_sample, got 3$"):
        build({"do_sample": True, "num_beams": 3})
    with pytest.raises(InputError, match=r"^do_sample: must be bool, got 1$"):
        build({"do_sample": 1})
    assert build({"temperature": 2}).temperature == 2.0 and isinstance(build({"temperature": 2}).temperature, float)


def test_a_mode_option_resets_the_bases_mode():
    base = GenerationConfig(num_beams=10, top_k=7)
    sampled = build({"do_sample": True}, base)
    assert (sampled.decode, sampled.num_beams, sampled.top_k) == ("sample", 1, 7)  # top_k is not a mode option
    assert build({"temperature": 0.5}, base).num_beams == 10  # nor is temperature: the base's beam stays


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"num_samples": 10, "decode": "greedy"}, {"num_return_sequences": 10}),
        ({"decode": "sample", "top_p": 0.9}, {"do_sample": True, "top_p": 0.9}),
        ({"decode": "beam"}, {"num_beams": 5}),
        ({"decode": "beam", "beam_size": 10}, {"num_beams": 10}),
        ({"num_samples": 10, "decode": "diverse_beam", "diversity": 1.0},
         {"num_return_sequences": 10, "num_beams": 5, "num_beam_groups": 10, "diversity_penalty": 1.0}),
        ({"decode": "mmi", "lm": "lm", "beam_size": 10}, {"num_beams": 10, "lm": "lm"}),
        ({"decode": "greedy", "beam_size": 10}, {}),  # a width without a beam decode was unused
    ],
)  # fmt: skip
def test_legacy_spec_options_read_as_the_same_decoding(old, new):
    assert build(from_legacy(old)) == build(new)


def test_legacy_diverse_beam_keeps_its_width():
    """Old decode = "diverse_beam": groups = N by default, width = groups * ceil(max(beam_size, N) / groups)."""
    cfg = build(from_legacy({"num_samples": 4, "decode": "diverse_beam"}))
    assert (cfg.decode, cfg.num_beam_groups, cfg.num_beams) == ("diverse_beam", 4, 5)


def test_fill_distinct_redraws_only_the_short_sources_up_to_the_cap():
    cfg = GenerationConfig(num_return_sequences=3, distinct=True, max_draws=7)
    calls = []
    fresh = iter(["b", "c", "x", "d", "e", "f", "g"])

    def draw(rows, n):
        calls.append((list(rows), n))
        # source 0 is fully repetitive; source 1 gets new outputs
        return [["a"] * n if row == 0 else [next(fresh) for _ in range(n)] for row in rows]

    out, drawn = fill_distinct([["a", "a", "a"], ["b", "b", "c"]], draw, cfg)
    assert out == [["a"], ["b", "c", "x"]]
    assert drawn == [7, 6] and calls == [([0, 1], 3), ([0], 1)]  # round 2 draws what the cap leaves for source 0
    uncapped = dataclasses.replace(cfg, max_draws=0)  # 0 means 5 x N
    assert fill_distinct([["a", "a", "a"]], lambda rows, n: [["a"] * n for _ in rows], uncapped)[1] == [15]
