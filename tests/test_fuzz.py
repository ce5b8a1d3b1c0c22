"""Fuzzing every reader with hypothesis: arbitrary bytes (encodings, control characters, long lines, deep
JSON) and arbitrary --set values either parse or raise InputError, never another exception."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slcvae.config import Config, build_config
from slcvae.errors import InputError
from slcvae.evaluation.human import read_ratings
from slcvae.evaluation.metrics import read_predictions
from slcvae.pipeline.compare import load_spec

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# bytes near each format: valid-looking text with damage, plus raw noise
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=20)  # fmt: skip


def damaged(text: str):
    """text itself, cut, with noise spliced in, or plain noise."""
    raw = text.encode()
    return st.one_of(
        st.just(raw),
        st.integers(0, len(raw)).map(lambda i: raw[:i]),
        st.tuples(st.integers(0, len(raw)), st.binary(max_size=30)).map(lambda t: raw[: t[0]] + t[1] + raw[t[0] :]),
        st.binary(max_size=300),
        st.just(b"\xef\xbb\xbf" + raw),
        st.just(b"[" * 5000 + b"]" * 5000),  # deep JSON
    )


def check(fn, path, data: bytes):
    path.write_bytes(data)
    with contextlib.suppress(InputError):  # anything else fails the test
        fn(path)


@FUZZ
@given(data=st.one_of(damaged('{"source": "a b", "samples": ["c d", "e"]}\n'), json_values.map(lambda v: json.dumps(v).encode())))
def test_predictions_reader(tmp_path, data):
    check(read_predictions, tmp_path / "p.jsonl", data)


@FUZZ
@given(data=damaged("id,source,output,fluency,coherence,diversity\na1,x,y,3,4,\n"))
def test_ratings_reader(tmp_path, data):
    check(lambda p: read_ratings(p, {"a1"}), tmp_path / "r.csv", data)


@FUZZ
@given(data=damaged('[model]\nlatent = 16\n[train]\nlr = 0.005\nmax_steps = 30\n[slcvae]\ndistance = "nll"\n'))
def test_toml_config_reader(tmp_path, data):
    check(lambda p: build_config("slcvae", p), tmp_path / "c.toml", data)


@FUZZ
@given(data=st.one_of(damaged(json.dumps(Config().to_dict())), json_values.map(lambda v: json.dumps(v).encode())))
def test_saved_config_reader(tmp_path, data):
    check(Config.load, tmp_path / "config.json", data)


@FUZZ
@given(data=damaged('out = "o"\ntrain = "t.tsv"\nvalid = "v.jsonl"\ntest = "t.jsonl"\nseeds = [1]\nmax_steps = 5\n'
                    '[models]\na = { model = "cvae" }\n'))  # fmt: skip
def test_compare_spec_reader(tmp_path, data):
    check(load_spec, tmp_path / "s.toml", data)


@FUZZ
@given(
    item=st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda k, v: f"{k}={v}",
            st.sampled_from(
                ["train.lr", "model.latent", "slcvae.distance", "cvae.word_dropout", "data.tokenizer", "x.y", "train"]
            ),
            st.text(max_size=30),
        ),
    )
)
def test_set_values(item):
    with contextlib.suppress(InputError):
        build_config("slcvae", None, [item])
