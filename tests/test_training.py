from __future__ import annotations

import json

import pytest
import torch

from slcvae.config import build_config
from slcvae.errors import InputError, TrainingDiverged
from slcvae.training import load_model_dir, train

TINY = [
    "model.embedding=16",
    "model.utterance=16",
    "model.context=24",
    "model.latent=4",
    "model.decoder=24",
    "model.mlp=16",
    "train.batch_size=16",
    "train.eval_every=5",
    "train.log_every=5",
    "train.progress=false",
    "train.tensorboard=false",
    "slcvae.warmup_steps=3",
]


def tiny(name, *sets):
    return build_config(name, sets=[*TINY, *sets])


def params(run_dir, ckpt="last"):
    return torch.load(run_dir / f"{ckpt}.pt", weights_only=True)["model"]


@pytest.mark.parametrize("name", ["cvae-wdrop", "slcvae"])
def test_resume_continues_exactly(tmp_path, synth_dir, name):
    """20 steps in one go == 8 steps, stop, resume to 20 (RNG, optimizer, data order restored)."""
    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    train(tiny(name, "train.max_steps=20"), tr, va, tmp_path / "full")
    train(tiny(name, "train.max_steps=8"), tr, va, tmp_path / "split")
    summary = train(tiny(name, "train.max_steps=20"), tr, va, tmp_path / "split", resume=True)
    assert summary["steps"] == 20
    full, split = params(tmp_path / "full"), params(tmp_path / "split")
    for key in full:
        assert torch.equal(full[key], split[key]), key


def test_refuses_to_overwrite_and_to_resume_nothing(tmp_path, synth_dir):
    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    with pytest.raises(InputError, match="no checkpoint to resume"):
        train(tiny("cvae", "train.max_steps=2"), tr, va, tmp_path / "run", resume=True)
    train(tiny("cvae", "train.max_steps=2"), tr, va, tmp_path / "run")
    with pytest.raises(InputError, match="already holds a run"):
        train(tiny("cvae", "train.max_steps=2"), tr, va, tmp_path / "run")
    with pytest.raises(InputError, match="holds model 'cvae'"):
        train(tiny("seq2seq", "train.max_steps=2"), tr, va, tmp_path / "run", resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, synth_dir, monkeypatch):
    from slcvae.models.cvae import CVAE

    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    original = CVAE.elbo

    def poisoned(self, batch, step):
        out, losses = original(self, batch, step)
        if step >= 7:
            losses["loss"] = losses["loss"] * float("nan")
        return out, losses

    monkeypatch.setattr(CVAE, "elbo", poisoned)
    with pytest.raises(TrainingDiverged, match="step 7, phase main: loss is nan"):
        train(tiny("cvae", "train.max_steps=20"), tr, va, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["state"]["step"] == 5 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_summary_and_validation_metrics(tmp_path, synth_dir):
    summary = train(
        tiny("slcvae", "train.max_steps=10", "train.tensorboard=true"),
        synth_dir / "train.tsv",
        synth_dir / "valid.jsonl",
        tmp_path / "r",
    )
    assert list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))
    valid = summary["valid"]
    assert {"rec", "kl", "elbo", "label", "recovery", "nll_per_token", "ppl", "active_units"} <= set(valid)
    assert valid["elbo"] == pytest.approx(valid["rec"] + valid["kl"])
    assert 0 <= valid["active_units"] <= 4
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["steps"] == 10
    model, tok, cfg = load_model_dir(tmp_path / "r")
    assert cfg.model_name == "slcvae" and not model.training
    # a run that ends inside the warm-up has no best checkpoint, and says so
    train(tiny("slcvae", "train.max_steps=2"), synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "w")
    with pytest.raises(InputError, match="during the warm-up; use --checkpoint last"):
        load_model_dir(tmp_path / "w")
    assert load_model_dir(tmp_path / "w", "last")[2].train.max_steps == 2
