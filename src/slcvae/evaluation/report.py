"""report.md (mean +- std over seeds, best in bold) and plots for `slcvae compare`.

curves.png    training KL and reconstruction per model (every seed, from each run's log.jsonl)
tradeoff.png  diversity (Distinct-2) against accuracy (BLEU precision), mean +- std per model
modes.png     mode precision and coverage per model (corpora whose references list every valid target)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from slcvae.errors import InputError
from slcvae.extras import available, require

# (key, header, direction): +1 higher is better, -1 lower is better, 0 a diagnostic (never bold)
ACCURACY = [
    ("source_use", "src nats", 1),  # nats per target taken from the source (evaluation/source_use.py): 0 = ignores it
    ("bleu_precision", "BLEU-P", 1),
    ("bleu_recall", "BLEU-R", 1),
    ("bleu_f1", "BLEU-F1", 1),
    ("bleu4_precision", "BLEU4-P", 1),
    ("bleu4_recall", "BLEU4-R", 1),
    ("sacrebleu", "sacreBLEU", 1),
    ("mode_precision", "mode P", 1),
    ("mode_coverage", "mode cov", 1),
    ("mode_coverage_expected", "E[mode cov]", 1),  # [evaluate] coverage_draws: the same, in expectation
    ("semantic_precision", "sem-P", 1),  # [evaluate] encoder: best cosine to a reference (evaluation/semantic.py)
    ("semantic_recall", "sem-R", 1),
]
DIVERSITY = [
    ("distinct_1", "Dist-1", 1),
    ("distinct_2", "Dist-2", 1),
    ("intra_distinct_2", "intra-D2", 1),
    ("inter_distinct_2", "inter-D2", 1),
    ("self_bleu", "self-BLEU", -1),
    ("unique_per_source", "unique/src", 1),
    ("generic_share", "generic", -1),  # share of all samples taken by the 10 most frequent outputs
    ("semantic_diversity", "sem-div", 1),  # [evaluate] encoder: mean pairwise cosine distance of a source's samples
    ("meaning_distinct", "meanings", 1),  # [evaluate] encoder: samples left after merging those within cosine 0.9
    ("avg_length", "len", 0),
]
HEALTH = [
    ("kl", "KL", 0),
    ("active_units", "AU", 0),
    ("mi", "MI", 0),
    ("iw_nll", "IW-NLL", -1),
    ("iw_ppl", "IW-PPL", -1),
    ("steps", "steps", 0),
    ("epochs", "epochs", 0),
    ("train_seconds", "train s", 0),
]


def aggregate(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """{model: {seed: metrics}} -> {model: {metric: (mean, std, n)}}; std is the sample std (0 for one seed)."""
    out = {}
    for name, seeds in results.items():
        keys = {k for m in seeds.values() for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        out[name] = {}
        for k in sorted(keys):
            vals = [float(m[k]) for m in seeds.values() if k in m]
            out[name][k] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))
    return out


def _fmt(key: str, mean: float, std: float, n: int) -> str:
    digits = 0 if key in ("steps", "train_seconds") else 1 if key in ("sacrebleu", "active_units", "iw_nll") else 3
    if digits == 3 and 0 < abs(mean) < 0.01:
        digits = 4  # collapsed diversity (Distinct ~0.0001) must not print as 0.000
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def table(agg: dict[str, dict[str, tuple[float, float, int]]], columns: list[tuple[str, str, int]]) -> str:
    """A markdown table of the columns any model has; the best mean of each directed column in bold."""
    cols = [c for c in columns if any(c[0] in m for m in agg.values())]
    if not cols:
        return ""
    best = {}
    for key, _, direction in cols:
        means = [m[key][0] for m in agg.values() if key in m]
        if direction and len(means) > 1:
            best[key] = max(means) if direction > 0 else min(means)
    lines = ["| model | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, m in agg.items():
        cells = []
        for key, _, _ in cols:
            if key not in m:
                cells.append("–")
                continue
            text = _fmt(key, *m[key])
            cells.append(f"**{text}**" if key in best and round(m[key][0], 6) == round(best[key], 6) else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(spec, results: dict[str, dict[str, dict]], out: Path, split: str = "test") -> None:
    """report.md, curves.png and tradeoff.png (+ modes.png) in `out`; a `split` other than "test" (scored on the
    spec's validation file) writes report.{split}.md, tradeoff.{split}.png and modes.{split}.png instead."""
    agg = aggregate(results)
    suffix = "" if split == "test" else f".{split}"
    scored = spec.test if split == "test" else spec.valid
    budget = f"{spec.max_minutes:g} minutes" if spec.max_minutes else f"{spec.max_steps} steps"
    gen = {**spec.generate}
    parts = [
        f"# {spec.path.stem}: {len(spec.entries)} models x {len(spec.seeds)} seed(s)\n",
        f"Spec `{spec.path}`; train `{spec.train}`, scored on {split} `{scored}`"
        + (f" (first {spec.test_sources} sources)" if spec.test_sources else "")
        + f"; budget {budget} per run; seeds {spec.seeds}; generation {json.dumps(gen)}; "
        f"importance samples {spec.iw_samples}. Cells: mean ± sample std over seeds; best mean in bold "
        "(higher is better except self-BLEU, generic share and IW-NLL/PPL; KL, AU, MI, length and cost are not ranked). "
        "src nats: nats per target the model takes from its source (0: it ignores the source); generic: share of all "
        "samples taken by the 10 most frequent outputs.\n",
        "## Accuracy\n",
        table(agg, ACCURACY),
        "## Diversity\n",
        table(agg, DIVERSITY),
        "## Latent health and cost\n",
        table(agg, HEALTH),
        f"## One {split} source, first seed\n",
    ]
    for name, seeds in results.items():
        ex = next(iter(seeds.values())).get("examples")
        if ex:
            if name == next(iter(results)):
                parts.append(f"source: `{ex['source'][:300]}`\n")
            uniq = list(dict.fromkeys(ex["samples"]))
            parts.append(f"- **{name}** ({len(uniq)} distinct): " + " | ".join(f"`{s}`" for s in uniq[:6]))
    modes = any("mode_coverage" in m for m in agg.values())
    parts.append(f"\nPlots: curves.png (training KL and reconstruction), tradeoff{suffix}.png (Distinct-2 vs BLEU-P)"
                 + (f", modes{suffix}.png" if modes else "") + ".\n")  # fmt: skip
    (out / f"report{suffix}.md").write_text("\n".join(parts), encoding="utf-8")
    if not available("matplotlib"):
        print(f'{out}: no plots (pip install "slcvae[plots]" for them); the report and results are written', file=sys.stderr)
        return
    plot_curves(spec, out / "curves.png")
    plot_tradeoff(agg, out / f"tradeoff{suffix}.png", f"{spec.path.stem} ({split})" if suffix else spec.path.stem)
    if modes:
        plot_modes(agg, out / f"modes{suffix}.png", spec.path.stem)


def _pyplot():
    matplotlib = require("matplotlib", "plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """A run's training log; a torn last line (the process was killed mid-write) is left out."""
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return []
    rows = []
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError) as err:
            if number < len(lines):  # only the last line can be torn by a kill; damage elsewhere is reported
                raise InputError(path, number, f"not JSON: {err}") from None
    return rows


def plot_curves(spec, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    trainers = [e for e in spec.entries.values() if e.run == e.name]
    colors = plt.get_cmap("tab10" if len(trainers) <= 10 else "tab20")
    for i, entry in enumerate(trainers):
        for j, seed in enumerate(spec.seeds_of(entry)):
            log = read_log(spec.run_dir(entry.name, seed))
            for ax, part in zip(axes, ("kl", "rec"), strict=True):
                pts = [
                    (r["step"], v)
                    for r in log
                    for k, v in r.items()
                    if k.split("/")[-1] == part and k.split("/")[0] in ("main", "cvae")
                ]
                if pts:
                    ax.plot(*zip(*pts, strict=True), color=colors(i), lw=1, alpha=0.85, label=entry.name if j == 0 else None)
    axes[0].set(title="KL(q || p) per source (training batches)", xlabel="step")
    axes[0].set_yscale("symlog", linthresh=1.0)  # linear below 1 nat (collapse), logarithmic above
    axes[1].set(title="reconstruction -log p(y|x,z) per source", xlabel="step")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tradeoff(agg, path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, m in agg.items():
        if "bleu_precision" in m and "distinct_2" in m:
            (x, xs, _), (y, ys, _) = m["bleu_precision"], m["distinct_2"]
            ax.errorbar(x, y, xerr=xs, yerr=ys, fmt="o", capsize=3)
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set(xlabel="BLEU precision (accuracy)", ylabel="Distinct-2 (diversity)", title=f"{title}: diversity vs accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_modes(agg, path: Path, title: str) -> None:
    plt = _pyplot()
    names = [n for n, m in agg.items() if "mode_coverage" in m]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4))
    for k, (key, label) in enumerate([("mode_precision", "mode precision"), ("mode_coverage", "mode coverage")]):
        xs = [i + 0.4 * k for i in range(len(names))]
        ax.bar(xs, [agg[n][key][0] for n in names], 0.4, yerr=[agg[n][key][1] for n in names], capsize=3, label=label)
    ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.1), title=f"{title}: valid targets produced (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
