"""Crash safety: a training run killed with SIGKILL at random moments resumes from an intact checkpoint,
loses at most one checkpoint interval, and ends bit-identical to an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests import sizes

SETS = [*sizes.LEGACY, *sizes.TINY, "train.batch_size=16", "train.eval_every=5", "train.log_every=1", "train.threads=1",
        *sizes.QUIET, *sizes.labels_after(20), "slcvae.ramp=0.0", "cvae.word_dropout=0.2"]  # fmt: skip
STEPS, KILLS = 400, 5


def command(synth_dir, out, resume: bool) -> list[str]:
    args = [sys.executable, "-m", "slcvae", "train", "--model", "slcvae", "--train", str(synth_dir / "train.tsv"),
            "--valid", str(synth_dir / "valid.jsonl"), "--out", str(out), "--max-steps", str(STEPS)]  # fmt: skip
    return [*args, *(x for s in SETS for x in ("--set", s)), *(["--resume"] if resume else [])]


def last_logged(out) -> int:
    log = out / "log.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    steps = [json.loads(line)["step"] for line in lines if line.endswith("}")]
    return max(steps, default=0)


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, synth_dir):
    rng = random.Random(7)
    out = tmp_path / "killed"
    survived = 0
    while survived < KILLS:
        resume = (out / "last.pt").is_file()
        proc = subprocess.Popen(command(synth_dir, out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # wait for training to be under way (the interpreter and torch take a few seconds to start), then a random delay
        start, before = time.monotonic(), last_logged(out)
        while last_logged(out) <= before and proc.poll() is None and time.monotonic() - start < 120:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            break  # finished before the kill: nothing more to interrupt
        reached = last_logged(out)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        survived += 1
        # intact: loads whatever the moment of the kill; at most one checkpoint interval (eval_every = 5) lost
        saved = torch.load(out / "last.pt", weights_only=True)["state"]["step"] if (out / "last.pt").is_file() else 0
        assert saved >= reached - 5 - 1, (saved, reached)
    assert survived == KILLS, f"only {survived} kills before the run finished; make the run longer"
    r = subprocess.run(command(synth_dir, out, resume=True), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(command(synth_dir, tmp_path / "whole", resume=False), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a = torch.load(out / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the log too: the lines a killed run wrote after its last checkpoint are dropped on resume, not repeated
    logged = [(out / "log.jsonl").read_text().splitlines(), (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert [json.loads(line)["step"] for line in logged[0]] == list(range(1, STEPS + 1))
    assert logged[0] == logged[1]


def test_sigterm_stops_a_compare_and_its_workers(tmp_path, synth_dir):
    """`kill` on `slcvae compare` used to leave its worker processes training as orphans, holding the runs' locks."""
    sets = ", ".join(f'"{s}"' for s in SETS)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'out = "{tmp_path / "out"}"\ntrain = "{synth_dir / "train.tsv"}"\nvalid = "{synth_dir / "valid.jsonl"}"\n'
                    f'test = "{synth_dir / "test.jsonl"}"\nseeds = [1, 2]\nmax_steps = 100000\nworkers = 2\n'
                    f'[models]\ncvae = {{ model = "cvae", set = [{sets}] }}\n')  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "slcvae", "compare", "--spec", str(spec)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    locks = [tmp_path / "out" / "runs" / "cvae" / f"seed{s}" / ".lock" for s in (1, 2)]
    start = time.monotonic()
    while not all(lock.is_file() and lock.read_text().endswith("}") for lock in locks) and time.monotonic() - start < 120:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.1)
    workers = [json.loads(lock.read_text())["pid"] for lock in locks]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = [pid for pid in workers if alive(pid)]
    for pid in orphans:  # do not leave them training for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not orphans


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").is_file() or Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
