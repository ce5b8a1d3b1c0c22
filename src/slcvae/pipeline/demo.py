"""`slcvae demo`: the whole pipeline on the embedded synthetic corpus, in a few minutes on a CPU.

synth -> the shipped compare spec configs/demo-compare.toml (seq2seq, cvae, cvae-bow and slcvae on
the same budget, configs/demo.toml; 10 greedy samples per unseen test source, z from the prior)
-> table, JSON and plot.
"""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slcvae.data.synth import synth
from slcvae.errors import InputError
from slcvae.extras import require
from slcvae.io import write_json_atomic, write_text_atomic
from slcvae.pipeline import compare
from slcvae.pipeline.compare import load_spec

MODELS = ("seq2seq", "cvae", "cvae-bow", "slcvae")
COLUMNS = [  # (key, header)
    ("mode_precision", "mode P"),
    ("mode_coverage", "mode cov"),
    ("bleu_precision", "BLEU-P"),
    ("bleu_recall", "BLEU-R"),
    ("distinct_1", "Dist-1"),
    ("distinct_2", "Dist-2"),
    ("generic_share", "generic"),  # share of all samples that are one of the 10 most frequent outputs
    ("source_use", "src nats"),  # nats per target taken from the source (test pairs): 0 = the source is ignored
    ("kl", "KL"),
    ("active_units", "AU"),
    ("steps", "steps"),
    ("train_seconds", "train s"),
]
console = Console(width=140)


def config_path() -> Path:
    return Path(str(resources.files("slcvae") / "configs" / "demo.toml"))


def plot(results: dict[str, dict], path: Path) -> None:
    matplotlib = require("matplotlib", "the demo's plot")
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


def cells(m: dict) -> list[str]:
    return [f"{m[k]:.0f}" if k in ("steps", "train_seconds", "active_units") else f"{m[k]:.3f}" for k, _ in COLUMNS]


def markdown(results: dict[str, dict]) -> str:
    head = "| model | " + " | ".join(h for _, h in COLUMNS) + " |\n|---|" + "---:|" * len(COLUMNS) + "\n"
    return head + "\n".join(f"| {name} | " + " | ".join(cells(m)) + " |" for name, m in results.items()) + "\n"


def spec_path() -> Path:
    return Path(str(resources.files("slcvae") / "configs" / "demo-compare.toml"))


def run(out: Path, max_minutes: float = 4.0, workers: int = 2, models: tuple[str, ...] = MODELS) -> dict[str, dict]:
    """The shipped demo spec (configs/demo-compare.toml) through `compare`, in `out`; returns each model's metrics."""
    started = time.monotonic()
    data = out / "data"
    synth(data, seed=0)
    runs = out / "runs"
    if runs.is_dir():
        shutil.rmtree(runs)  # a previous demo's runs: the demo always starts fresh
    overrides = {"out": str(out), "train": str(data / "train.tsv"), "valid": str(data / "valid.jsonl"),
                 "test": str(data / "test.jsonl"), "config": str(config_path()), "max_minutes": max_minutes,
                 "workers": workers}  # fmt: skip
    spec = load_spec(spec_path(), overrides)
    unknown = set(models) - set(spec.entries)
    if unknown:
        raise InputError("--models", None, f"not in the demo: {', '.join(sorted(unknown))} (known: {', '.join(spec.entries)})")
    spec.entries = {name: e for name, e in spec.entries.items() if name in models}
    console.print(f"training {', '.join(models)}: {workers} at a time, one thread each, at most {max_minutes} min each")
    payload = compare.run(spec)
    seed = str(spec.seeds[0])
    results, examples = {}, {}
    for name in spec.entries:
        m = dict(payload["results"][name][seed])
        first = m.pop("examples")  # every model's samples for the same first test source
        source, examples[name] = first["source"], first["samples"]
        m.update(kl=m.pop("valid_kl"), active_units=m.pop("valid_active_units"))
        results[name] = m
    sources = next(iter(results.values()))["sources"]
    table = Table(title=f"slcvae demo: {sources} unseen sources, 10 greedy samples each, z from the prior", width=140)
    table.add_column("model")
    for _, header in COLUMNS:
        table.add_column(header, justify="right")
    for name, m in results.items():
        table.add_row(name, *cells(m))
    console.print(table)
    console.print(f"\nsource: {source}")
    for name, samples in examples.items():
        console.print(f"[bold]{name}[/bold]: " + " | ".join(sorted(set(samples))))
    write_json_atomic(out / "results.json", {"results": results, "examples": {"source": source, **examples}})
    write_text_atomic(out / "results.md", markdown(results))
    plot(results, out / "results.png")
    console.print(
        f"\nwrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'} in {time.monotonic() - started:.0f} s"
    )
    return results
