"""The budget study's table (issue 10): mode coverage and friends per budget and model, from finished compare sweeps.

    python studies/budget_table.py configs/compare/budget-synth-{1,3,10}.toml --out docs/results/budget

Reads each spec's `results.json` and every run's `summary.json` (for the steps, KL and the step where
SLCVAE's labeling loss started), prints one markdown table (mean ± sample std over seeds) and writes
`budget.md` and `budget.json` (every run's numbers) under --out. Sweeps scored with `[evaluate] coverage_draws` (the
synthetic corpora: E[mode cov] and mode precision); the others (WebNLG, whose 1-3 human texts per source a sample
almost never repeats word for word) get BLEU-P, inter-source Distinct-2 and different texts per source, beside the
exact-match mode coverage.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from slcvae.pipeline.compare import load_spec

RUN_COLUMNS = [("kl", "KL", 2), ("steps", "steps", 0), ("label_start_step", "labels from step", 0)]
MODE_COLUMNS = [  # (key, header, digits)
    ("mode_coverage_expected", "E[mode cov]", 3),  # [evaluate] coverage_draws; – in sweeps run without it
    ("mode_coverage", "mode cov", 3),
    ("mode_precision", "mode P", 3),
    ("bleu_recall", "BLEU-R", 3),
    ("distinct_2", "Dist-2", 3),
] + RUN_COLUMNS
TEXT_COLUMNS = [  # free-text references: exact matches are rare, so BLEU and Distinct carry the comparison
    ("mode_coverage", "mode cov", 3),
    ("bleu_precision", "BLEU-P", 3),
    ("bleu_recall", "BLEU-R", 3),
    ("distinct_2", "Dist-2", 3),
    ("inter_distinct_2", "inter-D2", 3),
    ("unique_per_source", "texts / source", 1),
] + RUN_COLUMNS


def cell(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def collect(spec_path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {seed: metrics}} with the run summary's steps, validation KL and label start merged in."""
    spec = load_spec(spec_path)
    results = json.loads((spec.out / "results.json").read_text(encoding="utf-8"))["results"]
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for name, seeds in results.items():
        for seed, metrics in seeds.items():
            summary = json.loads((spec.run_dir(name, int(seed)) / "summary.json").read_text(encoding="utf-8"))
            keep = {k: metrics[k] for k, _, _ in MODE_COLUMNS + TEXT_COLUMNS if k in metrics}
            keep |= {
                "steps": summary["steps"],
                "kl": summary["valid"].get("kl"),
                "label_start_step": summary.get("label_start_step"),
            }
            runs.setdefault(name, {})[seed] = keep
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = {}
    for path in args.specs:
        spec = load_spec(path)
        budget = f"{spec.max_minutes:g} min" if spec.max_minutes else f"{spec.max_steps} steps"
        data[str(path)] = {"budget": budget, "train": str(spec.train), "runs": collect(path)}
    runs = [m for d in data.values() for seeds in d["runs"].values() for m in seeds.values()]
    columns = MODE_COLUMNS if any("mode_coverage_expected" in m for m in runs) else TEXT_COLUMNS
    header = "| corpus, budget | model | " + " | ".join(h for _, h, _ in columns) + " |"
    rows = [header, "|---|---|" + "---:|" * len(columns)]
    for d in data.values():
        for name, seeds in d["runs"].items():
            cells = []
            for key, _, digits in columns:
                values = [m[key] for m in seeds.values() if m.get(key) is not None]
                cells.append(
                    cell(values, digits) + (f" ({len(values)}/{len(seeds)})" if key == "label_start_step" and values else "")
                )
            rows.append(f"| {Path(d['train']).parent.name}, {d['budget']} | {name} | " + " | ".join(cells) + " |")
    table = "\n".join(rows) + "\n"
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "budget.md").write_text(table, encoding="utf-8")
        (args.out / "budget.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
