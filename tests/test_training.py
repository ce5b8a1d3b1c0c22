from __future__ import annotations

import json

import pytest
import torch

from slcvae.config import build_config
from slcvae.errors import InputError, TrainingDiverged
from slcvae.training import load_model_dir, train
from tests import sizes

TINY = [*sizes.LEGACY, *sizes.TINY, "train.batch_size=16", "train.eval_every=5", "train.log_every=5", *sizes.QUIET,
        *sizes.labels_after(3), "slcvae.ramp=0.0"]  # fmt: skip


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
    with pytest.raises(InputError, match="model: 'cvae' -> 'seq2seq'"):
        train(tiny("seq2seq", "train.max_steps=2"), tr, va, tmp_path / "run", resume=True)


def test_resume_refuses_another_config_or_data(tmp_path, synth_dir):
    """--resume used to ignore a changed --set or training file silently; now it names the difference."""
    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    train(tiny("cvae", "train.max_steps=2"), tr, va, tmp_path / "run")
    with pytest.raises(InputError, match=r"cvae\.word_dropout: 0\.0 -> 0\.1; train\.lr: 0\.001 -> 0\.002"):
        train(tiny("cvae", "train.max_steps=4", "train.lr=0.002", "cvae.word_dropout=0.1"), tr, va, tmp_path / "run", resume=True)
    changed = tmp_path / "train.tsv"
    changed.write_text(tr.read_text(encoding="utf-8") + "one more source\tone more target\n", encoding="utf-8")
    with pytest.raises(InputError, match="differs from the train data of this run"):
        train(tiny("cvae", "train.max_steps=4"), changed, va, tmp_path / "run", resume=True)
    summary = train(tiny("cvae", "train.max_steps=4"), tr, va, tmp_path / "run", resume=True)  # a larger budget is fine
    assert summary["steps"] == 4


def test_output_lock_names_the_holder_and_recovers_stale_locks(tmp_path, synth_dir, capsys):
    import os
    import subprocess
    import sys

    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    run = tmp_path / "run"
    run.mkdir()
    lock = run / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = os.uname().nodename
        lock.write_text(json.dumps({"pid": holder.pid, "host": host, "started": "now", "command": "slcvae train ..."}))
        with pytest.raises(InputError, match=f"in use by process {holder.pid} on {host}"):
            train(tiny("cvae", "train.max_steps=2"), tr, va, run)
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over with a message, and released at the end
    train(tiny("cvae", "train.max_steps=2"), tr, va, run)
    assert f"recovered a stale lock of process {holder.pid}" in capsys.readouterr().err
    assert not lock.exists() and (run / "last.pt").is_file()


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
    assert summary["label_start_step"] == 3 and summary["best_valid_elbo"] is not None


def test_validation_builds_no_graph(tmp_path, synth_dir, monkeypatch):
    """validate() lost its no_grad decorator once (a helper was inserted below it): every validation built a graph."""
    from slcvae.models.slcvae import SLCVAE

    modes, forward = [], SLCVAE.forward

    def recording(self, *args, **kwargs):
        modes.append(torch.is_grad_enabled())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(SLCVAE, "forward", recording)
    # 5 steps, eval_every 5: every phase of the 5 training steps with grad, then only the validation at the end
    train(tiny("slcvae", "train.max_steps=5"), synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "r")
    trained = modes.index(False)
    assert trained >= 5 and all(modes[:trained]) and not any(modes[trained:])


def test_slcvae_trains_like_its_cvae_bow_base_until_the_labels_act(tmp_path, synth_dir):
    """One seed, one path: before lambda > 0 an SLCVAE run is its CVAE + BOW base step for step (g draws its own
    initialization; the x-gap watch and the labeling phase draw nothing), so a seed's gap is the labels' alone."""
    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    runs = (("cvae-bow", "cvae-bow", []), ("slcvae", "slcvae", ["slcvae.warmup_steps=8"]),
            ("slcvae-lw0", "slcvae", ["slcvae.label_weight=0"]))  # fmt: skip
    for name, model, sets in runs:
        train(tiny(model, "train.max_steps=12", *sets), tr, va, tmp_path / name)
    base, late, lw0 = (params(tmp_path / n) for n in ("cvae-bow", "slcvae", "slcvae-lw0"))
    shared = list(base)  # SLCVAE adds g and its schedule's buffers
    schedule = {f"label_schedule.{k}" for k in ("ready_step", "start_step", "x_gap", "kl_mean")}  # its buffers
    assert len(shared) > 30 and set(lw0) - set(shared) == {k for k in lw0 if k.startswith("labeler.")} | schedule
    for key in shared:  # lambda 0 throughout, labeling phase from step 3: the same weights, bit for bit
        assert torch.equal(base[key], lw0[key]), key
    assert any(not torch.equal(lw0[k], late[k]) for k in shared)  # lambda 1 from step 8: the paths part


def test_a_gated_run_is_its_cvae_bow_base_and_says_so(tmp_path, synth_dir):
    """With z in use throughout (training KL above gate_kl from the ready step on) the labels never act: the run is
    its CVAE + BOW base weight for weight, best.pt exists, and the summary says why the labels did not start."""
    tr, va = synth_dir / "train.tsv", synth_dir / "valid.jsonl"
    train(tiny("cvae-bow", "train.max_steps=12"), tr, va, tmp_path / "base")
    summary = train(tiny("slcvae", "train.max_steps=12", "slcvae.gate_kl=1e-9"), tr, va, tmp_path / "gated")
    base, gated = params(tmp_path / "base"), params(tmp_path / "gated")
    for key in base:
        assert torch.equal(base[key], gated[key]), key
    assert summary["label_start_step"] is None and summary["label_ready_step"] == 3 and summary["label_gated"]
    assert summary["training_kl"] > 1e-9 and summary["best_valid_elbo"] is not None
    assert any("z stayed in use" in w for w in summary["warnings"])
    assert not any("before the labeling loss started" in w for w in summary["warnings"])
    opened = train(tiny("slcvae", "train.max_steps=12", "slcvae.gate_kl=1e9"), tr, va, tmp_path / "open")
    assert opened["label_start_step"] == 3 and not opened["label_gated"]  # KL below the gate at once: the warm-up's end


def test_a_run_that_ends_before_the_labels_says_so(tmp_path, synth_dir, capsys):
    summary = train(tiny("slcvae", "train.max_steps=2"), synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "w")
    text = (tmp_path / "w" / "summary.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"summary.json holds {c}: not strict JSON"))
    assert saved["best_valid_elbo"] is None and saved["label_start_step"] is None
    assert any("before the labeling loss started" in w for w in saved["warnings"])
    assert saved["warnings"] == summary["warnings"]
    assert not (tmp_path / "w" / "best.pt").exists()
    model, _, cfg = load_model_dir(tmp_path / "w")  # best.pt missing: falls back to last.pt, with a message
    assert cfg.train.max_steps == 2 and "using last.pt" in capsys.readouterr().err


def test_vanished_kl_is_reported():
    from slcvae.models import build_model
    from slcvae.training.trainer import TrainState, run_warnings

    cvae = build_model(tiny("cvae"), 20, 1)
    assert run_warnings(cvae, {"kl": 0.02}, TrainState(step=7, best=3.0)) == [
        "KL stayed near zero (0.02 nats at step 7): the decoder ignores z, so samples from the prior will be alike (KL vanishing)"
    ]
    assert run_warnings(cvae, {"kl": 2.5}, TrainState(step=7, best=3.0)) == []
    seq2seq = build_model(tiny("seq2seq"), 20, 1)
    assert run_warnings(seq2seq, {}, TrainState(step=7, best=3.0)) == []  # no latent: nothing to vanish
    assert run_warnings(seq2seq, {"source_use": 0.02}, TrainState(step=7, best=3.0)) == [
        "the model takes 0.02 nats per target from its source (validation, step 7): its outputs barely depend on the "
        "source; try --set model.attention=true (the decoder reads the source only in its first state)"
    ]
    attending = build_model(tiny("seq2seq", "model.attention=true"), 20, 1)
    assert run_warnings(attending, {"source_use": 0.02}, TrainState(step=7))[0].endswith("source; it may need more steps")
    assert run_warnings(seq2seq, {"source_use": 1.5}, TrainState(step=7, best=3.0)) == []
    assert run_warnings(build_model(tiny("lm"), 20, 1), {"source_use": 0.0}, TrainState(step=7, best=3.0)) == []


def test_early_stopping_after_patience_validations_without_improvement(tmp_path, synth_dir):
    # lr 0: the weights never move, so every validation after the first ties the best (no improvement)
    cfg = tiny("cvae", "train.lr=0.0", "train.eval_every=2", "train.patience=2", "train.max_steps=100")
    summary = train(cfg, synth_dir / "train.tsv", synth_dir / "valid.jsonl", tmp_path / "r")
    assert summary["steps"] == 6 and summary["early_stopped"]  # best at step 2, stale at 4 and 6
    off = train(tiny("cvae", "train.lr=0.0", "train.eval_every=2", "train.max_steps=8"), synth_dir / "train.tsv",
                synth_dir / "valid.jsonl", tmp_path / "off")  # fmt: skip
    assert off["steps"] == 8 and not off["early_stopped"]
