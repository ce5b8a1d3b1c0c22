"""Each model family with and without an option, paired by seed: one row per family from a compare results.json.

    python studies/paired_table.py results.json [MORE ...] [--suffix=-att | --pair A:B ...] [--metrics source_use,...]

Each input is a compare results.json or a Table 1 ledger folder (ROW/seedN.json, docs/results/paper-dailydialog/ledger),
so a study's rows can be paired with rows trained elsewhere; a model named in two inputs is refused.

Pairs every model NAME with NAME + SUFFIX (e.g. `cvae` with `cvae-att`), or the named pairs. A cell reads
`a -> b (k/n)`: the means over seeds of A and of B, and on how many of the n shared seeds B moved the metric the
better way (more, or less for the generic share). Seeds are paired because both runs of one seed see the same data
order and initial draws, so the count says more than two overlapping spreads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling study that owns the ledger's layout
from paper_table import read_ledger  # noqa: E402

# (results key, column header, +1 if more is better, -1 if less)
METRICS = {
    "source_use": ("src nats", 1),
    "mode_precision": ("mode P", 1),
    "mode_coverage": ("mode cov", 1),
    "bleu_precision": ("BLEU-P", 1),
    "bleu_recall": ("BLEU-R", 1),
    "paper_bleu_precision": ("BLEU-P", 1),
    "paper_bleu_recall": ("BLEU-R", 1),
    "sacrebleu": ("sacreBLEU", 1),
    "distinct_2": ("Dist-2", 1),
    "generic_share": ("generic", -1),
    "unique_per_source": ("unique/src", 1),
}


def cell(a: dict[str, dict], b: dict[str, dict], key: str, direction: int) -> str:
    """`mean_a -> mean_b (k/n)` over the seeds both models have; `–` where neither reports the metric."""
    seeds = sorted(s for s in set(a) & set(b) if key in a[s] and key in b[s])
    if not seeds:
        return "–"
    xa, xb = [float(a[s][key]) for s in seeds], [float(b[s][key]) for s in seeds]
    better = sum((y - x) * direction > 0 for x, y in zip(xa, xb, strict=True))
    digits = 1 if key in ("sacrebleu", "source_use") else 3
    mean_a, mean_b = statistics.fmean(xa), statistics.fmean(xb)
    if digits == 3 and 0 < min(abs(mean_a), abs(mean_b)) < 0.01:
        digits = 4
    return f"{mean_a:.{digits}f} -> {mean_b:.{digits}f} ({better}/{len(seeds)})"


def paired_table(results: dict[str, dict[str, dict]], pairs: list[tuple[str, str]], metrics: list[str]) -> str:
    """A markdown table: one row per pair (A, B), one column per metric."""
    missing = [name for pair in pairs for name in pair if name not in results]
    if missing:
        raise SystemExit(f"no model named {', '.join(missing)} in the results (models: {', '.join(results)})")
    lines = ["| A -> B | " + " | ".join(METRICS[k][0] for k in metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for a, b in pairs:
        cells = [cell(results[a], results[b], k, METRICS[k][1]) for k in metrics]
        lines.append(f"| {a} -> {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def suffix_pairs(results: dict[str, dict[str, dict]], suffix: str) -> list[tuple[str, str]]:
    """Every model NAME that has a NAME + suffix partner, in the results' order."""
    pairs = [(name, name + suffix) for name in results if name + suffix in results]
    if not pairs:
        raise SystemExit(f"no model has a partner named NAME{suffix} (models: {', '.join(results)})")
    return pairs


def load(paths: list[Path]) -> dict[str, dict[str, dict]]:
    """{model: {seed: metrics}} from results.json files and ledger folders (ROW/seedN.json holding "metrics")."""
    results: dict[str, dict[str, dict]] = {}
    for path in paths:
        if path.is_dir():
            part = {row: {seed: e["metrics"] for seed, e in seeds.items()} for row, seeds in read_ledger(path).items()}
        else:
            part = json.loads(path.read_text(encoding="utf-8"))["results"]
        if twice := sorted(set(part) & set(results)):
            raise SystemExit(f"{path}: {', '.join(twice)} also in an earlier input; a model must come from one place")
        results.update(part)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, nargs="+", help="results.json files and/or ledger folders")
    p.add_argument("--suffix", default="-att", help="pair NAME with NAME + this (default -att; write --suffix=-x)")
    p.add_argument("--pair", action="append", default=[], help="A:B, instead of --suffix (repeatable)")
    p.add_argument("--metrics", default="source_use,bleu_precision,bleu_recall,distinct_2,generic_share,unique_per_source")
    args = p.parse_args()
    metrics = args.metrics.split(",")
    unknown = [k for k in metrics if k not in METRICS]
    if unknown:
        raise SystemExit(f"--metrics: unknown {', '.join(unknown)} (known: {', '.join(METRICS)})")
    results = load(args.results)
    pairs = [tuple(p.split(":", 1)) for p in args.pair] if args.pair else suffix_pairs(results, args.suffix)
    print(paired_table(results, pairs, metrics))


if __name__ == "__main__":
    main()
