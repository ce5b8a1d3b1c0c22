"""The Python API (slcvae.Generator): loading, saving without pickles, RNG hygiene, options."""

from __future__ import annotations

import json

import pytest
import torch

import slcvae
from slcvae.errors import InputError
from slcvae.training import train
from tests.test_training import tiny


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synth_dir):
    out = tmp_path_factory.mktemp("api") / "run"
    torch.manual_seed(0)
    train(tiny("slcvae", "train.max_steps=30", "train.eval_every=10"), synth_dir / "train.tsv", synth_dir / "valid.jsonl", out)
    return out


def test_three_lines_and_shapes(run_dir):
    gen = slcvae.Generator.from_pretrained(run_dir, seed=0)
    out = gen.generate(["ask the weather in paris", ["hello", "ask the time"]], num_return_sequences=4)
    assert [len(row) for row in out] == [4, 4]
    assert all(isinstance(text, str) for row in out for text in row)
    # a plain string is one source, never a list of characters
    assert len(gen.generate("ask the weather in paris", num_return_sequences=3)) == 1


def test_calls_differ_and_leave_global_rng_alone(run_dir):
    gen = slcvae.Generator.from_pretrained(run_dir, seed=0)
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    a = gen.generate(["ask the weather in paris"] * 8, num_return_sequences=5, do_sample=True)
    b = gen.generate(["ask the weather in paris"] * 8, num_return_sequences=5, do_sample=True)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a != b  # the object's own stream moves on between calls
    # the same seed, or generators in the same state, give the same samples
    assert gen.generate("hello", 5, do_sample=True, seed=3) == gen.generate("hello", 5, do_sample=True, seed=3)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert gen.generate("hello", 5, do_sample=True, generator=g1) == gen.generate("hello", 5, do_sample=True, generator=g2)
    # and two objects with the same seed repeat each other
    again = slcvae.Generator.from_pretrained(run_dir, seed=0)
    assert again.generate(["ask the weather in paris"] * 8, num_return_sequences=5, do_sample=True) == a


def test_save_pretrained_round_trip_without_pickles(run_dir, tmp_path, monkeypatch):
    gen = slcvae.Generator.from_pretrained(run_dir, seed=0)
    saved = gen.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in saved.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "slcvae.json",
        "tokenizer.json",
        "tokenizer_mode.json",
    ]
    meta = json.loads((saved / "slcvae.json").read_text())
    assert (meta["format"], meta["format_version"], meta["model_name"]) == ("slcvae-pretrained", 1, "slcvae")
    from slcvae.io import UMASK

    # every file as `open` would leave it (0666 less the umask; 0644 under the usual 022), not mkstemp's private 0600
    assert {p.stat().st_mode & 0o777 for p in saved.iterdir()} == {0o666 & ~UMASK}

    def no_unpickling(*args, **kwargs):
        raise AssertionError("loading a saved model folder must not call torch.load")

    monkeypatch.setattr(torch, "load", no_unpickling)
    loaded = slcvae.Generator.from_pretrained(saved, seed=0)
    for (name, a), b in zip(gen.model.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    kwargs = dict(num_return_sequences=4, do_sample=True, seed=11)
    assert loaded.generate(["hello", "ask the time"], **kwargs) == gen.generate(["hello", "ask the time"], **kwargs)


def test_a_folders_generation_config_is_every_calls_default(run_dir, tmp_path):
    """generation_config.json holds the model's decoding defaults: the API starts from it, arguments override it,
    and an option that picks the decoding mode resets the folder's other mode options."""
    saved = slcvae.Generator.from_pretrained(run_dir).save_pretrained(tmp_path / "model")
    on_disk = json.loads((saved / "generation_config.json").read_text())
    assert on_disk["num_return_sequences"] == 10 and "seed" not in on_disk  # a per-call setting is not a default
    on_disk.update(num_return_sequences=3, num_beams=2)
    (saved / "generation_config.json").write_text(json.dumps(on_disk))
    gen = slcvae.Generator.from_pretrained(saved, seed=0)
    assert gen.generation_config.decode == "beam" and [len(r) for r in gen.generate(["hello", "hi"])] == [3, 3]
    sampled = gen.generate(["hello"], do_sample=True, seed=2)  # do_sample drops the folder's num_beams
    assert sampled == gen.generate(["hello"], 3, do_sample=True, num_beams=1, seed=2)
    (saved / "generation_config.json").write_text(json.dumps({"top_p": 2.0}))
    with pytest.raises(InputError, match=r"generation_config.json: top_p: must be <= 1, got 2.0"):
        slcvae.Generator.from_pretrained(saved)
    (saved / "generation_config.json").write_text(json.dumps({"beams": 2}))
    with pytest.raises(InputError, match=r"generation_config.json: unknown generation option 'beams'"):
        slcvae.Generator.from_pretrained(saved)


def test_saved_folder_faults_are_input_errors(run_dir, tmp_path):
    saved = slcvae.Generator.from_pretrained(run_dir).save_pretrained(tmp_path / "model")
    meta = json.loads((saved / "slcvae.json").read_text())
    (saved / "slcvae.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(InputError, match="format version 99 is newer"):
        slcvae.Generator.from_pretrained(saved)
    (saved / "slcvae.json").write_text(json.dumps(meta))
    (saved / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="unreadable weights"):
        slcvae.Generator.from_pretrained(saved)
    with pytest.raises(InputError, match="no such model folder"):
        slcvae.Generator.from_pretrained(tmp_path / "absent")


def test_options_act(run_dir):
    gen = slcvae.Generator.from_pretrained(run_dir, seed=0)
    sources = ["ask the weather in paris", "hello"]
    for row in gen.generate(sources, 6, do_sample=True, temperature=3.0, seed=1, suppress_unk=True):
        assert all("<unk>" not in text for text in row)
    hot = gen.generate(sources, 6, do_sample=True, temperature=3.0, seed=1, suppress_unk=False)
    assert any("<unk>" in text for row in hot for text in row)  # a 30-step model at T = 3 does say <unk>
    for row in gen.generate(sources, 6, do_sample=True, temperature=3.0, seed=1, max_new_tokens=3):
        assert all(len(text.split()) <= 3 for text in row)
    for row in gen.generate(sources, 6, do_sample=True, temperature=3.0, seed=1, min_new_tokens=5):
        assert all(len(text.split()) >= 5 for text in row)
    for row in gen.generate(sources, 6, do_sample=True, temperature=3.0, seed=1, no_repeat_ngram_size=1, max_new_tokens=12):
        assert all(len(set(text.split())) == len(text.split()) for text in row)
    assert len(gen.generate(sources, 3, num_beams=2)[1]) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sources": []}, "no sources"),
        ({"sources": [["hello", ""]]}, "empty source or empty turn"),
        ({"sources": [3]}, "must be a string or a list"),
        ({"sources": ["a"], "do_sample": True, "num_beams": 2}, "does not sample"),
        ({"sources": ["a"], "latent": "posterior"}, "one target per source"),
        ({"sources": ["a"], "top_p": 0.0}, "^top_p: must be > 0, got 0.0"),
        ({"sources": ["a"], "n": 0}, "^n: must be >= 1, got 0"),
        ({"sources": ["a"], "top_k": 2.5}, "^top_k: must be int, got 2.5"),
        ({"sources": ["a"], "n": 2, "num_samples": 3}, "given twice, as 'n' and 'num_samples'"),
        ({"sources": ["a"], "repetition_penalty": 0.0}, "^repetition_penalty: must be > 0"),
        ({"sources": ["a"], "max_new_tokens": -1}, "^max_new_tokens: must be >= 0"),
        ({"sources": ["a"], "num_return_sequences": 0}, "^num_return_sequences: must be >= 1, got 0"),
        ({"sources": ["a"], "max_length": 20}, r"^max_length: unknown generation option 'max_length' \(use max_new_tokens\)"),
        ({"sources": ["a"], "num_beam_groups": 2}, "diverse_beam is a seq2seq decoding baseline"),  # an SLCVAE varies z
        ({"sources": ["a"], "noise": 0.5}, "^noise: is a seq2seq decoding baseline"),
    ],
)
def test_bad_arguments_name_themselves(run_dir, kwargs, match):
    gen = slcvae.Generator.from_pretrained(run_dir)
    with pytest.raises(InputError, match=match):
        gen.generate(**kwargs)
