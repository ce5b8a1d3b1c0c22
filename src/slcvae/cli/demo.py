"""`slcvae demo`: the whole pipeline on the embedded synthetic corpus, in a few minutes on a CPU.

synth -> train seq2seq, cvae, cvae-bow and slcvae on the same budget (configs/demo.toml) ->
10 greedy samples per unseen test source, z from the prior -> table, JSON and plot.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slcvae.config import build_config
from slcvae.data.corpus import read_corpus
from slcvae.data.synth import synth
from slcvae.evaluation import evaluate_texts
from slcvae.generation import GenerateConfig, generate
from slcvae.io import write_text_atomic
from slcvae.training import load_model_dir, train

MODELS = ("seq2seq", "cvae", "cvae-bow", "slcvae")
COLUMNS = [  # (key, header)
    ("mode_precision", "mode P"),
    ("mode_coverage", "mode cov"),
    ("bleu_precision", "BLEU-P"),
    ("bleu_recall", "BLEU-R"),
    ("distinct_1", "Dist-1"),
    ("distinct_2", "Dist-2"),
    ("kl", "KL"),
    ("active_units", "AU"),
    ("steps", "steps"),
    ("train_seconds", "train s"),
]
console = Console(width=140)


def config_path() -> Path:
    return Path(str(resources.files("slcvae") / "configs" / "demo.toml"))


def run_model(job: tuple[str, Path, Path, float]) -> tuple[str, dict, list[list[str]]]:
    """Train one model on the demo budget and score its test samples (runs in a worker process)."""
    name, data, out, max_minutes = job
    tests = read_corpus(data / "test.jsonl")
    run_dir = out / "models" / name
    if (run_dir / "config.json").is_file():
        shutil.rmtree(run_dir)  # a previous demo's run: the demo always starts fresh
    sets = [f"train.max_minutes={max_minutes}", "train.progress=false"]
    summary = train(build_config(name, config_path(), sets), data / "train.tsv", data / "valid.jsonl", run_dir)
    model, tokenizer, cfg = load_model_dir(run_dir, "last")
    samples = generate(model, tokenizer, tests, cfg.data, GenerateConfig(num_samples=10, decode="greedy", latent="prior"))
    lines = (json.dumps({"source": ex.source_text, "samples": s}) + "\n" for ex, s in zip(tests, samples, strict=True))
    write_text_atomic(run_dir / "test.pred.jsonl", "".join(lines))
    metrics = evaluate_texts(samples, [ex.targets for ex in tests], modes=True)
    valid = summary["valid"]
    metrics.update(
        kl=valid["kl"],
        active_units=valid.get("active_units", 0.0),
        steps=summary["steps"],
        train_seconds=summary["train_seconds"],
        distinct_per_source=sum(len(set(s)) for s in samples) / len(samples),
    )
    console.print(
        f"{name}: {summary['steps']} steps in {summary['train_seconds']:.0f} s, "
        f"mode coverage {metrics['mode_coverage']:.3f} at precision {metrics['mode_precision']:.3f}"
    )
    return name, metrics, samples


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    keys = [("mode_precision", "mode precision"), ("mode_coverage", "mode coverage"), ("distinct_2", "Distinct-2")]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        ax.bar([x + i * width for x in range(len(names))], [results[n][key] for n in names], width, label=label)
    ax.set_xticks([x + width for x in range(len(names))], names)
    ax.set_ylim(0, 1.2)
    ax.set_title("slcvae demo: 10 greedy samples per unseen source, z ~ p(z|x)")
    ax.legend(loc="upper center", ncol=len(keys), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: dict[str, dict]) -> str:
    head = "| model | " + " | ".join(h for _, h in COLUMNS) + " |\n|---|" + "---:|" * len(COLUMNS) + "\n"
    rows = []
    for name, m in results.items():
        cells = [f"{m[k]:.0f}" if k in ("steps", "train_seconds", "active_units") else f"{m[k]:.3f}" for k, _ in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def run(out: Path, max_minutes: float = 4.0, workers: int = 2, models: tuple[str, ...] = MODELS) -> dict[str, dict]:
    started = time.monotonic()
    data = out / "data"
    synth(data, seed=0)
    tests = read_corpus(data / "test.jsonl")
    console.print(f"training {', '.join(models)}: {workers} at a time, one thread each, at most {max_minutes} min each")
    # the longest run (slcvae) starts first so the two workers finish together
    jobs = [(name, data, out, max_minutes) for name in sorted(models, key=lambda n: n != "slcvae")]
    with mp.get_context("spawn").Pool(workers) as pool:
        done = {name: (m, s) for name, m, s in pool.imap_unordered(run_model, jobs)}
    results = {name: done[name][0] for name in models}
    examples = {name: done[name][1][0] for name in models}
    table = Table(title=f"slcvae demo: {len(tests)} unseen sources, 10 greedy samples each, z from the prior", width=140)
    table.add_column("model")
    for _, header in COLUMNS:
        table.add_column(header, justify="right")
    for name, m in results.items():
        table.add_row(
            name, *[f"{m[k]:.0f}" if k in ("steps", "train_seconds", "active_units") else f"{m[k]:.3f}" for k, _ in COLUMNS]
        )
    console.print(table)
    console.print(f"\nsource: {tests[0].source_text}")
    for name, samples in examples.items():
        console.print(f"[bold]{name}[/bold]: " + " | ".join(sorted(set(samples))))
    write_text_atomic(
        out / "results.json",
        json.dumps({"results": results, "examples": {"source": tests[0].source_text, **examples}}, indent=2) + "\n",
    )
    write_text_atomic(out / "results.md", markdown(results))
    plot(results, out / "results.png")
    console.print(
        f"\nwrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'} in {time.monotonic() - started:.0f} s"
    )
    return results
