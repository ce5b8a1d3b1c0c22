"""Our rows of the SLCVAE paper's Table 1 beside the paper's, with the gap per cell (issue 9).

    python bench/paper_table.py runs/compare/paper-dailydialog-35min [more folders] [--out docs/results/paper-dailydialog]

Reads what `slcvae compare --spec configs/compare/paper-dailydialog*.toml` wrote (results.json, and each run's
summary.json for steps, epochs, minutes and whether it stopped at convergence) and writes table.md and
table.json: BLEU-precision / BLEU-recall (the paper's d = mean of cumulative BLEU-1..3, NLTK method 7; our
`paper_bleu_*`), Distinct-1/2 (corpus level), ours as mean +- sample std over seeds, gap = ours - paper.
Our own variants of a paper row are named after it with a suffix (`kla-wd-hold`: the KLA+WD row with
`cvae.anneal_hold`); they follow the paper's rows, set against the row they vary.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

# arXiv 1903.10842v1, Table 1: BLEU-prec, BLEU-recall, distinct-1, distinct-2
PAPER = {
    "seq2seq-bs": ("SEQ2SEQ+BS", (0.164, 0.282, 0.002, 0.007)),
    "seq2seq-noise0.2": ("SEQ2SEQ+noise(0.2)", (0.163, 0.288, 0.003, 0.014)),
    "seq2seq-noise0.5": ("SEQ2SEQ+noise(0.5)", (0.157, 0.312, 0.005, 0.032)),
    "seq2seq-noise0.8": ("SEQ2SEQ+noise(0.8)", (0.153, 0.320, 0.007, 0.065)),
    "mmi-antilm": ("MMI-AntiLM", (0.153, 0.275, 0.002, 0.012)),
    "kla-wd": ("KLA+WD", (0.212, 0.345, 0.010, 0.041)),
    "kla-wd-bow": ("KLA+WD+BOW", (0.210, 0.344, 0.013, 0.066)),
    "kla-wd-sl": ("KLA+WD+SL (SLCVAE)", (0.214, 0.354, 0.014, 0.078)),
}
METRICS = ("paper_bleu_precision", "paper_bleu_recall", "distinct_1", "distinct_2")
RUN_OF = {"seq2seq-bs": "seq2seq", "seq2seq-noise0.2": "seq2seq", "seq2seq-noise0.5": "seq2seq",
          "seq2seq-noise0.8": "seq2seq", "mmi-antilm": "seq2seq"}  # fmt: skip


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _paper_row(name: str) -> tuple[str, str] | None:
    """(paper key, label) for a paper row or one of our variants of it (`<paper key>-<suffix>`); None otherwise."""
    if name in PAPER:
        return name, PAPER[name][0]
    bases = [k for k in PAPER if name.startswith(k + "-")]
    if not bases:
        return None
    base = max(bases, key=len)
    return base, f"{PAPER[base][0]} [ours: {name.removeprefix(base + '-')}]"


def build(folders: list[Path]) -> list[dict]:
    found = {}  # row name -> (folder, {seed: metrics}); the paper's rows first, then our variants
    for folder in folders:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))["results"]
        for name, seeds in results.items():
            if name in found:  # two folders with the same row: which one is meant is not ours to guess
                raise SystemExit(f"{folder / 'results.json'}: row {name!r} is also in {found[name][0] / 'results.json'}")
            if _paper_row(name):
                found[name] = (folder, seeds)
    order = [n for n in PAPER if n in found] + [n for n in found if n not in PAPER]
    rows = []
    for name in order:
        folder, seeds = found[name]
        base, label = _paper_row(name)
        paper = PAPER[base][1]
        runs = [json.loads((folder / "runs" / RUN_OF.get(name, name) / f"seed{s}" / "summary.json").read_text())
                for s in seeds]  # fmt: skip
        row = {"row": label, "name": name, "seeds": len(seeds), "folder": str(folder)}
        for metric, ref in zip(METRICS, paper, strict=True):
            mean, std = _mean_std([seeds[s][metric] for s in seeds])
            row[metric] = {"paper": ref, "ours": round(mean, 4), "std": round(std, 4), "gap": round(mean - ref, 4)}
        row["steps"] = [r["steps"] for r in runs]
        row["epochs"] = [round(r["epochs"], 1) for r in runs]
        row["train_minutes"] = [round(r["train_seconds"] / 60, 1) for r in runs]
        row["converged"] = [bool(r["early_stopped"]) for r in runs]
        row["kl"] = [round(r["valid"].get("kl", 0.0), 4) for r in runs]  # validation KL at the end (seq2seq: none)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| row | BLEU-P paper / ours (gap) | BLEU-R paper / ours (gap) | Dist-1 paper / ours (gap) | "
            "Dist-2 paper / ours (gap) | KL | steps | epochs | min | converged |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cells = []
        for m in METRICS:
            c = r[m]
            std = f" +- {c['std']:.3f}" if r["seeds"] > 1 else ""
            cells.append(f"{c['paper']:.3f} / {c['ours']:.3f}{std} ({c['gap']:+.3f})")
        runs = [", ".join(map(str, r[k])) for k in ("kl", "steps", "epochs", "train_minutes")]
        runs.append(", ".join("yes" if c else "no" for c in r["converged"]))
        lines.append(f"| {r['row']} | " + " | ".join(cells + runs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+", help="compare output folders (results.json, runs/)")
    ap.add_argument("--out", type=Path, help="also write table.md and table.json here")
    args = ap.parse_args()
    rows = build(args.folders)
    text = markdown(rows)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(text, encoding="utf-8")
        (args.out / "table.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
