"""`slcvae compare --spec FILE.toml`: models x seeds on one corpus at an equal budget.

A spec names the corpus, the budget (steps or minutes), the seeds and the models; every
(model, seed) is trained, generates N samples per test source and is scored with the full
suite (text metrics + latent health). The sweep is resumable: a finished run (summary.json)
is skipped after checking that its saved config is the one the spec asks for, a run stopped
midway resumes from last.pt with the minutes it has left, and a scored run (eval.json) is
not scored again. Output under `out`: runs/NAME/seedS/ (the training folders, predictions,
eval.json), results.json, report.md and the plots (evaluation/report.py). `split = "valid"` (`--split valid`)
scores the same runs on the validation file instead, beside the test scores (valid.pred.jsonl, valid.eval.json,
results.valid.json, report.valid.md): a setting is chosen on those, and the test scores are the ones reported.

Spec (paths relative to the working directory):

    out = "runs/compare/synth"
    train = "data/synth/train.tsv"
    valid = "data/synth/valid.jsonl"
    test = "data/synth/test.jsonl"
    config = "configs/synth.toml"      # optional base TOML for every model
    seeds = [1, 2, 3]
    max_steps = 3000                   # and/or max_minutes = 15 (with both, whichever ends a run first)
    workers = 2                        # runs trained at once (each with train.threads from the config)
    test_sources = 0                   # score only the first N test sources; 0 = all

    [generate]                         # generation options (GenerationConfig), for every model
    num_return_sequences = 10
    [evaluate]
    iw_samples = 20                    # importance samples for the NLL bound; 0 = skip latent health
    coverage_draws = 100               # also draw 100 per test source and report mode_coverage_expected, the
                                       # coverage num_samples samples have in expectation; 0 = skip
    encoder = "all-MiniLM-L6-v2"       # also the meaning-level metrics with this sentence encoder (optional)
    [models]
    cvae = { model = "cvae" }
    "slcvae-lam0.5" = { model = "slcvae", set = ["slcvae.label_weight=0.5"], seeds = [1] }   # only seed 1
    seq2seq-beam = { run = "seq2seq", generate = { num_beams = 10 } }    # reuse another entry's training
    lm = { model = "lm" }                                                # trained, not scored
    seq2seq-mmi = { run = "seq2seq", generate = { num_beams = 10, lm = "lm" } }

Specs written before the options took Hugging Face's names (decode = "beam", beam_size, ...) read as the
same decoding (`generation.config.from_legacy`).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slcvae.config import Config, build_config, config_diff, tomllib
from slcvae.errors import InputError
from slcvae.generation import GenerationConfig
from slcvae.generation.config import ALIASES, FIELDS, build, from_legacy
from slcvae.io import OutputLock
from slcvae.pipeline.run import score_run, train_run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_TOP = {"out", "train", "valid", "test", "config", "seeds", "max_steps", "max_minutes", "workers", "test_sources",
        "generate", "evaluate", "models"}  # fmt: skip
_LEGACY_GENERATE = {"decode", "beam_size", "beam_groups", "diversity"}  # read by from_legacy
_ENTRY = {"model", "set", "run", "generate", "seeds"}


@dataclass
class Entry:
    name: str
    model: str  # the model family trained (MODELS)
    sets: list[str]  # --set overrides on top of the spec's config
    run: str  # the entry whose training this one uses (itself unless `run = ...`)
    generate: dict[str, Any]  # generation options for this entry, over the spec's [generate]
    seeds: list[int] = field(default_factory=list)  # this entry's seeds (a tuning row: one); empty = the spec's


@dataclass
class Spec:
    path: Path
    out: Path
    train: Path
    valid: Path
    test: Path
    config: Path | None
    seeds: list[int]
    max_steps: int
    max_minutes: float
    workers: int
    test_sources: int
    generate: dict[str, Any]
    iw_samples: int
    coverage_draws: int = 0  # [evaluate]: draws per test source for mode_coverage_expected; 0 = not computed
    encoder: str = ""  # [evaluate]: a sentence encoder for the meaning-level metrics; "" = not computed
    entries: dict[str, Entry] = field(default_factory=dict)
    device: str = ""  # `slcvae compare --device`: where the runs train (a machine's, not the spec's; "" = the config's)
    split: str = "test"  # `slcvae compare --split`: score on the test file, or on the validation file to tune

    def scored_file(self) -> Path:
        """The corpus the runs are scored on: the test file, or the validation file with split = "valid"."""
        return self.test if self.split == "test" else self.valid

    def seeds_of(self, entry: Entry) -> list[int]:
        """The seeds an entry runs: its own `seeds` (in the spec's order) or all of the spec's."""
        return [s for s in self.seeds if not entry.seeds or s in entry.seeds]

    def run_dir(self, name: str, seed: int) -> Path:
        return self.out / "runs" / name / f"seed{seed}"

    def budget_sets(self, seed: int) -> list[str]:
        sets = [f"train.seed={seed}", "train.progress=false"] + ([f"train.device={self.device}"] if self.device else [])
        return sets + [f"train.{k}={v}" for k, v in self.budget().items()]

    def budget(self) -> dict[str, float]:
        """The budget the spec gives (one or both of max_steps, max_minutes); the config's value for the other."""
        return {k: v for k, v in (("max_steps", self.max_steps), ("max_minutes", self.max_minutes)) if v}

    def build(self, entry: Entry, seed: int) -> Config:
        # an entry's own train.max_steps / max_minutes win over the spec's budget: a model with slower steps can be
        # compared at equal time, or a row extended to the steps another row ran, in the same spec
        return build_config(entry.model, self.config, [*self.budget_sets(seed), *entry.sets])

    def generate_config(self, entry: Entry, seed: int) -> GenerationConfig:
        merged = {**self.generate, **entry.generate, "seed": seed}
        merged.pop("checkpoint", None)
        return build(from_legacy(merged, self.path), where=self.path)

    def checkpoint(self, entry: Entry) -> str:
        """Which checkpoint is scored: last by default, so every run is judged where its equal budget ended."""
        return {**self.generate, **entry.generate}.get("checkpoint", "last")


def _distinct_ints(value: Any) -> bool:
    """A spec's seed list: a non-empty list of distinct integers (booleans are not seeds)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
        and len(set(value)) == len(value)
    )


def _need(tree: dict, key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in tree:
        raise InputError(path, None, f"missing required key {key!r}")
    if not isinstance(tree[key], kind) or isinstance(tree[key], bool):
        raise InputError(path, None, f"{key} has the wrong type: {tree[key]!r}")
    return tree[key]


def load_spec(path: Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read and check a compare spec; every problem names the file and the key.

    `overrides` replace top-level keys after reading (the demo points a shipped spec at its own folder)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "no such spec file")
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, None, f"invalid TOML: {err}") from None
    tree.update(overrides or {})
    unknown = set(tree) - _TOP
    if unknown:
        raise InputError(path, None, f"unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_TOP))})")
    if "max_steps" not in tree and "max_minutes" not in tree:
        raise InputError(path, None, "give a budget: max_steps, max_minutes or both")
    seeds = _need(tree, "seeds", list, path)
    if not _distinct_ints(seeds):
        raise InputError(path, None, f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    gen_fields = (set(FIELDS) | set(ALIASES) | _LEGACY_GENERATE) - {"seed"} | {"checkpoint"}
    generate = tree.get("generate", {})
    for where, gen in [("[generate]", generate)] + [(f"models.{k}.generate", v.get("generate", {})) for k, v in
                                                     tree.get("models", {}).items() if isinstance(v, dict)]:  # fmt: skip
        bad = set(gen) - gen_fields
        if bad:
            raise InputError(
                path, None, f"{where}: unknown field(s) {', '.join(sorted(bad))} (known: {', '.join(sorted(gen_fields))})"
            )
    evaluate = tree.get("evaluate", {})
    if set(evaluate) - {"iw_samples", "coverage_draws", "encoder"}:
        known = "iw_samples, coverage_draws and encoder"
        raise InputError(path, None, f"[evaluate] knows only {known}, got {', '.join(sorted(evaluate))}")
    spec = Spec(
        path=path,
        out=Path(_need(tree, "out", str, path)),
        train=Path(_need(tree, "train", str, path)),
        valid=Path(_need(tree, "valid", str, path)),
        test=Path(_need(tree, "test", str, path)),
        config=Path(tree["config"]) if "config" in tree else None,
        seeds=seeds,
        max_steps=int(tree.get("max_steps", 0)),
        max_minutes=float(tree.get("max_minutes", 0.0)),
        workers=int(tree.get("workers", 1)),
        test_sources=int(tree.get("test_sources", 0)),
        generate=generate,
        iw_samples=int(evaluate.get("iw_samples", 20)),
        coverage_draws=int(evaluate.get("coverage_draws", 0)),
        encoder=str(evaluate.get("encoder", "")),
    )
    if spec.max_steps < 0 or spec.max_minutes < 0 or not spec.budget():
        raise InputError(path, None, "the budget must be positive")
    if spec.workers < 1:
        raise InputError(path, None, f"workers must be >= 1, got {spec.workers}")
    if spec.coverage_draws < 0:
        raise InputError(path, None, f"[evaluate] coverage_draws must be >= 0 (0 = off), got {spec.coverage_draws}")
    for p in (spec.train, spec.valid, spec.test, spec.config):
        if p is not None and not p.is_file():
            raise InputError(path, None, f"{p} does not exist (paths are relative to the working directory)")
    models = _need(tree, "models", dict, path)
    if not models:
        raise InputError(path, None, "[models] is empty")
    for name, raw in models.items():
        if not _NAME.match(name) or not isinstance(raw, dict):
            raise InputError(path, None, f"models.{name}: names use letters, digits and ._+- and map to a table")
        if set(raw) - _ENTRY:
            raise InputError(path, None, f"models.{name}: unknown key(s) {', '.join(sorted(set(raw) - _ENTRY))}")
        if ("model" in raw) == ("run" in raw):
            raise InputError(path, None, f"models.{name}: give either model (train it) or run (reuse another entry's training)")
        own = raw.get("seeds", [])
        if "seeds" in raw and not (_distinct_ints(own) and set(own) <= set(seeds)):
            raise InputError(path, None, f"models.{name}: seeds must be a non-empty list of distinct seeds of the spec's "
                             f"{seeds}, got {own!r}")  # fmt: skip
        spec.entries[name] = Entry(
            name, raw.get("model", ""), list(raw.get("set", [])), raw.get("run", name), raw.get("generate", {}), own
        )
    for e in spec.entries.values():
        if e.run != e.name:
            if e.run not in spec.entries or spec.entries[e.run].run != e.run:
                raise InputError(path, None, f"models.{e.name}: run = {e.run!r} must name an entry that trains")
            e.model, e.sets = spec.entries[e.run].model, spec.entries[e.run].sets
            missing = set(spec.seeds_of(e)) - set(spec.seeds_of(spec.entries[e.run]))
            if missing:
                raise InputError(path, None, f"models.{e.name}: seeds {sorted(missing)} are not trained by {e.run!r}")
        lm = {**spec.generate, **e.generate}.get("lm")
        if lm in spec.entries and set(spec.seeds_of(e)) - set(spec.seeds_of(spec.entries[lm])):
            raise InputError(path, None, f"models.{e.name}: its lm {lm!r} is not trained with all of its seeds")
        for seed in spec.seeds_of(e):
            spec.build(e, seed)  # check model names and --set values now, before hours of training
            gen = spec.generate_config(e, seed)
            if 0 < spec.coverage_draws < gen.num_return_sequences:
                raise InputError(path, None, f"[evaluate] coverage_draws = {spec.coverage_draws} is below "
                                 f"models.{e.name}'s num_samples ({gen.num_return_sequences}): the expected coverage of N "
                                 "samples needs >= N draws")  # fmt: skip
    return spec


def _check_same_config(run_dir: Path, cfg: Config) -> None:
    diff = config_diff(Config.load(run_dir / "config.json"), cfg)  # fields added since the run take their defaults
    if diff:
        raise InputError(run_dir / "config.json", 1, f"this run was trained with another config ({'; '.join(diff)}); "
                         "delete the folder or restore the spec")  # fmt: skip


def train_status(spec: Spec, entry: Entry, seed: int) -> str:
    """'done' (summary.json), 'partial' (last.pt only) or 'new'; checks the saved config either way."""
    run_dir = spec.run_dir(entry.name, seed)
    cfg = spec.build(entry, seed)
    if (run_dir / "config.json").is_file():
        _check_same_config(run_dir, cfg)
    if (run_dir / "summary.json").is_file():
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["train"]
        for key in ("max_steps", "max_minutes"):
            if saved[key] != (asked := getattr(cfg.train, key)):
                raise InputError(run_dir / "config.json", 1, f"finished with train.{key}={saved[key]}, the spec asks "
                                 f"for {asked}; delete the folder or restore the spec")  # fmt: skip
        return "done"
    return "partial" if (run_dir / "last.pt").is_file() else "new"


def _train_job(job: tuple[Spec, str, int]) -> tuple[str, int, float]:
    """Train (or resume) one run in a worker process; returns its wall seconds."""
    spec, name, seed = job
    return name, seed, train_run(spec.build(spec.entries[name], seed), spec.train, spec.valid, spec.run_dir(name, seed))


def _score_job(job: tuple[Spec, str, int]) -> tuple[str, int, dict[str, Any]]:
    """score_run in a worker process, the machine's cores shared among the workers."""
    import os

    import torch

    spec, name, seed = job
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.workers))
    entry = spec.entries[name]
    gen = spec.generate_config(entry, seed)
    lm = (spec.run_dir(gen.lm, seed) if gen.lm in spec.entries else Path(gen.lm)) if gen.decode == "mmi" else None
    metrics = score_run(spec.run_dir(entry.run, seed), spec.run_dir(name, seed), spec.scored_file(), gen,
                        spec.checkpoint(entry), spec.test_sources, spec.iw_samples, lm, spec.coverage_draws,
                        spec.device or "cpu", spec.split, spec.encoder)  # fmt: skip
    return name, seed, metrics


def select(spec: Spec, only: list[str] | None = None, seeds: list[int] | None = None) -> Spec:
    """The spec cut to the entries named in `only` and those they need (their training run, their MMI lm), and to
    `seeds` (each one of the spec's).

    A long sweep can then finish and report some rows or seeds first; a later call without them skips their runs."""
    unknown = [name for name in only or [] if name not in spec.entries]
    if unknown:
        raise InputError(spec.path, None, f"--only {', '.join(unknown)}: no such entry in [models] "
                         f"(entries: {', '.join(spec.entries)})")  # fmt: skip
    other = [seed for seed in seeds or [] if seed not in spec.seeds]
    if other:
        raise InputError(spec.path, None, f"--seed {', '.join(map(str, other))}: not among the spec's seeds {spec.seeds}")
    keep = set(spec.entries) if not only else set()
    for name in only or []:
        entry = spec.entries[name]
        keep |= {name, entry.run}
        lm = {**spec.generate, **entry.generate}.get("lm")
        if lm in spec.entries:
            keep.add(lm)
    entries = {n: e for n, e in spec.entries.items() if n in keep}
    return dataclasses.replace(spec, entries=entries, seeds=[s for s in spec.seeds if not seeds or s in seeds])


def run(
    spec: Path | Spec,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
    device: str | None = None,
    workers: int | None = None,
    out: Path | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """The whole sweep: train what is missing, score what is unscored, write results.json, report.md, plots.

    `only`, `seeds`: just these entries (and what they need) and seeds, see `select`. `device`, `workers`: this
    machine's, in place of the config's train.device and the spec's workers. `out`: another folder than the spec's,
    so that parts of one spec run side by side (a folder takes one compare at a time). `split`: "test", or "valid"
    to score on the spec's validation file (results.valid.json, report.valid.md) for choosing a setting."""
    from rich.console import Console

    from slcvae.loading import resolve_device

    if isinstance(spec, Spec):
        spec = dataclasses.replace(spec, out=Path(out)) if out is not None else spec
    else:
        spec = load_spec(spec, {"out": str(out)} if out is not None else None)
    if workers is not None and workers < 1:
        raise InputError("--workers", None, f"must be >= 1, got {workers}")
    if split not in ("test", "valid"):
        raise InputError("--split", None, f"must be test or valid, got {split!r}")
    if device:
        resolve_device(device)  # an unknown name or a missing GPU fails now, not in every worker
    spec = dataclasses.replace(spec, device=device or spec.device, workers=workers or spec.workers, split=split)
    spec = select(spec, only, seeds) if only or seeds else spec
    with OutputLock.folder(spec.out), _stop_workers_on_sigterm():  # a second compare into the folder would race
        return _run(spec, Console(stderr=True), only or [])


@contextmanager
def _stop_workers_on_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`) ends a sweep like Ctrl-C: the worker pools are terminated, not left training as orphans
    that hold their runs' locks. Runs resume from last.pt on the next call."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(spec: Spec, console, only: list[str]) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from slcvae.evaluation.report import write_report
    from slcvae.io import write_text_atomic

    trainers = [e for e in spec.entries.values() if e.run == e.name]
    status = {(e.name, s): train_status(spec, e, s) for e in trainers for s in spec.seeds_of(e)}
    todo = [(spec, name, seed) for (name, seed), st in status.items() if st != "done"]
    skipped = len(status) - len(todo)
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=console) as progress:  # fmt: skip
        task = progress.add_task("train", total=len(status), completed=skipped, info=f"{skipped} finished runs skipped")
        if todo:
            with mp.get_context("spawn").Pool(min(spec.workers, len(todo))) as pool:
                for name, seed, seconds in pool.imap_unordered(_train_job, todo):
                    progress.update(task, advance=1, info=f"{name} seed {seed}: {seconds:.0f} s")
        # an lm entry only serves MMI reranking: its unconditional samples are not a result
        jobs = [(spec, e.name, s) for e in spec.entries.values() for s in spec.seeds_of(e) if e.model != "lm"]
        task = progress.add_task("score", total=len(jobs), info="")
        scored = {}
        with mp.get_context("spawn").Pool(min(spec.workers, len(jobs))) as pool:
            for name, seed, metrics in pool.imap_unordered(_score_job, jobs):
                scored[name, seed] = metrics
                progress.update(task, advance=1, info=f"{name} seed {seed}")
        results: dict[str, dict[str, Any]] = {}
        for _, name, seed in jobs:  # in spec order, whatever order the workers finished in
            results.setdefault(name, {})[str(seed)] = scored[name, seed]
    payload = {
        "spec": str(spec.path),
        "budget": spec.budget(),
        "seeds": spec.seeds,
        "results": results,
        "wall_seconds_this_call": round(time.monotonic() - started, 1),
        "skipped_finished_runs": skipped,
        "only": only,  # non-empty: a part of the spec's entries (`slcvae compare --only`)
        "split": spec.split,  # what the runs were scored on: test, or valid (choosing a setting)
        "python": sys.version.split()[0],
    }
    suffix = "" if spec.split == "test" else f".{spec.split}"
    write_text_atomic(spec.out / f"results{suffix}.json", json.dumps(payload, indent=2) + "\n")
    write_report(spec, results, spec.out, spec.split)
    console.print(f"wrote {spec.out / f'results{suffix}.json'}, {spec.out / f'report{suffix}.md'} and plots "
                  f"({skipped} finished runs skipped)")  # fmt: skip
    return payload
