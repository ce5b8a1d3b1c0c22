"""train -> generate -> score for one run: the single path that `slcvae generate`, `compare`, the demo
and the ablation take.

    train_run       train, or resume a stopped run with the part of its time budget it has left
    generate_file   N outputs per source to JSONL, streamed chunk by chunk, resumable
    score_run       generate for a test corpus and score it (text metrics + latent health), cached
    expected_coverage  the mode coverage N samples have in expectation, from more draws
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from slcvae.config import Config
from slcvae.data.batching import encode
from slcvae.data.corpus import Example, read_corpus
from slcvae.errors import InputError
from slcvae.evaluation import evaluate_texts, latent_health, meaning_scores
from slcvae.evaluation.metrics import mode_coverage_at
from slcvae.evaluation.source_use import source_use
from slcvae.generation import GenerationConfig, generate
from slcvae.generation.config import SPELL_API
from slcvae.io import OutputLock, write_json_atomic
from slcvae.loading import load_checkpoint, load_lm, load_model_dir, resolve_device
from slcvae.training import train


def train_run(cfg: Config, train_path: Path, valid_path: Path, run_dir: Path) -> float:
    """Train into `run_dir`, or resume it from last.pt; returns the wall seconds of this call.

    A resumed run with a time budget gets the minutes it has left, and its config.json keeps the
    budget of the whole run (so a finished run compares equal to the spec that asked for it).
    """
    resume = (run_dir / "last.pt").is_file()
    budget = cfg.train.max_minutes
    if resume and budget:
        done = load_checkpoint(run_dir / "last.pt")["state"]["seconds"]
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_minutes=max(budget - done / 60, 1e-3)))
    started = time.monotonic()
    train(cfg, train_path, valid_path, run_dir, resume=resume)
    if resume and budget:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        saved["train"]["max_minutes"] = budget
        write_json_atomic(run_dir / "config.json", saved)
    return time.monotonic() - started


def kept_lines(output: Path, examples: list[Example]) -> int:
    """How many leading lines of a partial output are complete and match the input's sources, in order."""
    if not output.is_file():
        return 0
    count = 0
    for line in output.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n") or count >= len(examples):
            break
        try:
            source = json.loads(line).get("source")
        except (ValueError, AttributeError):
            break
        if source != examples[count].source_text:
            raise InputError(
                output, count + 1, "--resume: this line's source is not the input's; the output belongs to another input"
            )
        count += 1
    return count


def generate_file(
    model, tokenizer, cfg: Config, examples: list[Example], gen: GenerationConfig, output: Path,
    anti_lm=None, resume: bool = False, chunk: int = 0, progress: bool = False, spell=SPELL_API,
) -> tuple[list[list[str]], int]:  # fmt: skip
    """Write one {"source", "samples"} JSON line per source, flushed chunk by chunk; returns (samples made, resumed after).

    Chunk c (`chunk` sources, 0 = all in one) is generated with seed + c, and resume restarts at a
    chunk boundary, so a resumed file equals an uninterrupted one byte for byte. progress: a bar with the sources
    done and the time left on stderr (the CLI's; compare's workers write none). With gen.distinct each line also
    says how many outputs its source drew ("drawn"). `spell` names options in errors as the caller does.
    """
    chunk = chunk or max(1, len(examples))
    output.parent.mkdir(parents=True, exist_ok=True)
    made: list[list[str]] = []
    bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not progress, transient=True)  # fmt: skip
    with OutputLock.file(output), bar:
        first = (kept_lines(output, examples) if resume else 0) // chunk
        task = bar.add_task("sources", total=len(examples), completed=first * chunk)
        lines = output.read_text(encoding="utf-8").splitlines(keepends=True)[: first * chunk] if first else []
        keep = len("".join(lines).encode())
        with open(output, "r+b" if first else "wb") as f:
            f.truncate(keep)
            f.seek(keep)
            for c in range(first, -(-len(examples) // chunk)):
                part = examples[c * chunk : (c + 1) * chunk]
                stats: dict[str, list[int]] = {}
                outputs = generate(model, tokenizer, part, cfg.data, dataclasses.replace(gen, seed=gen.seed + c), anti_lm,
                                   spell, stats)  # fmt: skip
                for ex, samples, drawn in zip(part, outputs, stats["drawn"], strict=True):
                    line = {"source": ex.source_text, "samples": samples} | ({"drawn": drawn} if gen.distinct else {})
                    f.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
                f.flush()
                made.extend(outputs)
                bar.advance(task, len(part))
    return made, first * chunk


def expected_coverage(model, tokenizer, cfg: Config, tests: list[Example], gen: GenerationConfig, draws: int, lm=None) -> float:
    """The mode coverage gen.num_return_sequences samples have in expectation, from `draws` more per source (mean over sources).

    The scored coverage draws N once per source: with tens of sources that draw alone moves a run's
    coverage by a few hundredths (docs/results/schedule/expected_coverage.md). These draws are independent
    of the scored ones (another seed) and unbiased for it (`mode_coverage_at`). Only for decodings whose
    samples are independent draws (greedy from a random z, ancestral sampling); a beam's N-best is not.
    """
    rows = max(1, gen.batch_size * gen.num_return_sequences // draws)  # about as many decoding rows at once as the scored pass
    more = dataclasses.replace(gen, num_return_sequences=draws, seed=gen.seed + 1_000_003, batch_size=rows)
    outputs = generate(model, tokenizer, tests, cfg.data, more, lm)
    per_source = [mode_coverage_at(o, ex.targets, gen.num_return_sequences) for o, ex in zip(outputs, tests, strict=True)]
    return sum(per_source) / len(per_source)


def score_run(
    train_dir: Path, out_dir: Path, test: Path, gen: GenerationConfig, checkpoint: str = "last",
    test_sources: int = 0, iw_samples: int = 0, lm_dir: Path | None = None, coverage_draws: int = 0, device: str = "cpu",
    split: str = "test", encoder: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Generate for the test sources with the model in `train_dir`, score, and cache the result in out_dir/eval.json.

    `split` names what `test` is: "test" writes test.pred.jsonl and eval.json, another name (e.g. "valid", for
    choosing a setting without looking at the test set) writes {split}.pred.jsonl and {split}.eval.json beside them.

    Metrics: evaluate_texts (BLEU, Distinct, modes where the corpus lists every valid target), source use,
    latent health with `iw_samples` > 0, `mode_coverage_expected` with `coverage_draws` > 0 (`expected_coverage`),
    and the run's steps, epochs, training seconds and final validation KL / active units (summary.json).
    A cache whose settings differ is recomputed. `device`: where the model generates (the scores do not depend on it
    beyond the draws of z).
    """
    key = {"generate": dataclasses.asdict(gen), "checkpoint": checkpoint, "test": str(test),
           "test_sources": test_sources, "iw_samples": iw_samples, "source_use": True}  # fmt: skip
    if coverage_draws:  # absent when off, so the caches of runs scored before it existed stay valid
        key["coverage_draws"] = coverage_draws
    if encoder:
        key["encoder"] = encoder
    cache = out_dir / ("eval.json" if split == "test" else f"{split}.eval.json")
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return saved["metrics"]
    tests = read_corpus(test)
    if test_sources:
        tests = tests[:test_sources]
    model, tokenizer, cfg = load_model_dir(train_dir, checkpoint)
    model.to(resolve_device(device))
    anti_lm = load_lm(lm_dir, tokenizer) if gen.decode == "mmi" else None
    samples, _ = generate_file(model, tokenizer, cfg, tests, gen, out_dir / f"{split}.pred.jsonl", anti_lm)
    metrics: dict[str, Any] = evaluate_texts(samples, [ex.targets for ex in tests], modes=all(ex.complete for ex in tests))
    if encoder:
        metrics.update(meaning_scores(samples, [ex.targets for ex in tests], encoder))
    if coverage_draws and "mode_coverage" in metrics and gen.decode in ("greedy", "sample"):
        metrics["mode_coverage_expected"] = expected_coverage(model, tokenizer, cfg, tests, gen, coverage_draws, anti_lm)
    pairs = [Example(ex.source, [t], ex.line) for ex in tests for t in ex.targets]  # the scored sources, a pair per target
    if iw_samples:  # with the model already loaded
        metrics.update(latent_health(model, tokenizer, cfg, pairs, iw_samples))
    else:  # latent health includes it; without, source use still reaches every report
        metrics["source_use"] = source_use(model, encode(pairs, tokenizer, cfg.data), tokenizer, cfg.train.batch_size)
    summary = json.loads((train_dir / "summary.json").read_text(encoding="utf-8"))
    metrics.update(steps=summary["steps"], epochs=summary["epochs"], train_seconds=summary["train_seconds"])
    valid = summary.get("valid") or {}
    metrics.update(valid_kl=valid.get("kl", 0.0), valid_active_units=valid.get("active_units", 0.0))
    metrics["examples"] = {"source": tests[0].source_text, "samples": samples[0]}
    write_json_atomic(cache, {"key": key, "metrics": metrics})
    return metrics
