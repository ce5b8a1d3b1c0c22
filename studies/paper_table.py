"""Our rows of the SLCVAE paper's Table 1 beside the paper's, with the gap per cell (issue 9).

    python studies/paper_table.py runs/compare/paper-dailydialog-35min [more folders] [--out docs/results/paper-dailydialog]

Reads what `slcvae compare --spec configs/compare/paper-dailydialog*.toml` wrote (results.json, and each run's
summary.json for steps, epochs, minutes and whether it stopped at convergence) and writes table.md and
table.json: BLEU-precision / BLEU-recall (the paper's d = mean of cumulative BLEU-1..3, NLTK method 7; our
`paper_bleu_*`), Distinct-1/2 (corpus level), ours as mean +- sample std over seeds, gap = ours - paper.
Our own variants of a paper row are named after it with a suffix (`kla-wd-hold`: the KLA+WD row with
`cvae.anneal_hold`); they follow the paper's rows, set against the row they vary.

A converged row takes hours on this CPU and runs/ does not outlive a session, so the table is kept in a ledger
that sessions add to: one small JSON per finished run (metrics, steps, convergence, the run's config), committed.

    python studies/paper_table.py runs/compare/paper-dailydialog --record docs/results/paper-dailydialog/ledger
    python studies/paper_table.py --ledger docs/results/paper-dailydialog/ledger --out docs/results/paper-dailydialog/table

--record writes an entry per converged run of the folders (an entry already there must hold the same numbers;
runs stopped by their cap only with --unconverged); --ledger
builds the table from every entry. Seeds of one row must share one config (all but train.seed and the
RESUME_FREE keys), so runs of another setting never average into a row.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from slcvae.config import RESUME_FREE

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


def identity(config: dict | None) -> dict | None:
    """A run's config without what may differ between seeds of one row (the seed, the RESUME_FREE keys)."""
    if config is None:
        return None
    train = {k: v for k, v in config["train"].items() if k != "seed" and k not in RESUME_FREE}
    return {**config, "train": train}


def entries(folders: list[Path]) -> dict[str, dict[str, dict]]:
    """{row: {seed: entry}} from compare output folders; entry = metrics, convergence, config, where from."""
    found: dict[str, tuple[Path, dict[str, dict]]] = {}
    for folder in folders:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        for name, seeds in results["results"].items():
            if name in found:  # two folders with the same row: which one is meant is not ours to guess
                raise SystemExit(f"{folder / 'results.json'}: row {name!r} is also in {found[name][0] / 'results.json'}")
            if not _paper_row(name):
                continue
            rows = {}
            for seed, metrics in seeds.items():
                run = folder / "runs" / RUN_OF.get(name, name) / f"seed{seed}"
                summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
                rows[seed] = {
                    "metrics": {k: v for k, v in metrics.items() if k != "examples"},  # samples stay in report.md
                    "converged": bool(summary["early_stopped"]),
                    "config": json.loads((run / "config.json").read_text(encoding="utf-8")),
                    "spec": results["spec"],
                    "folder": str(folder),
                }
            found[name] = (folder, rows)
    return {name: rows for name, (_, rows) in found.items()}


def record(found: dict[str, dict[str, dict]], ledger: Path, unconverged: bool = False) -> list[Path]:
    """Write one entry per run under ledger/<row>/seed<N>.json; an entry already there must hold the same numbers.

    Runs that hit their step or time cap before early stopping are left out (the table is of converged runs)
    unless `unconverged`."""
    written = []
    for name, seeds in found.items():
        for seed, entry in seeds.items():
            path = ledger / name / f"seed{seed}.json"
            if not (entry["converged"] or unconverged):
                print(f"not recorded: {name} seed {seed} stopped at its cap, not at convergence")
                continue
            if path.exists():
                old = json.loads(path.read_text(encoding="utf-8"))
                if old["metrics"] != entry["metrics"]:
                    raise SystemExit(f"{path}: already holds other numbers for {name} seed {seed}; move it away to replace it")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            written.append(path)
    return written


def read_ledger(ledger: Path) -> dict[str, dict[str, dict]]:
    """{row: {seed: entry}} from every ledger/<row>/seed<N>.json."""
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(ledger.glob("*/seed*.json")):
        found.setdefault(path.parent.name, {})[path.stem.removeprefix("seed")] = json.loads(path.read_text(encoding="utf-8"))
    if not found:
        raise SystemExit(f"{ledger}: no entries (<row>/seed<N>.json)")
    return found


def build(found: dict[str, dict[str, dict]]) -> list[dict]:
    """Table rows, the paper's first (its order), then our variants; each cell mean +- sample std over seeds."""
    order = [n for n in PAPER if n in found] + [n for n in found if n not in PAPER and _paper_row(n)]
    rows = []
    for name in order:
        seeds = dict(sorted(found[name].items(), key=lambda kv: int(kv[0])))
        configs = {json.dumps(identity(e.get("config")), sort_keys=True) for e in seeds.values() if e.get("config")}
        if len(configs) > 1:
            raise SystemExit(f"row {name!r}: its seeds were trained with different configs; one row, one setting")
        base, label = _paper_row(name)
        paper = PAPER[base][1]
        sources = sorted({e["folder"] for e in seeds.values()})
        row = {"row": label, "name": name, "seeds": [int(s) for s in seeds], "sources": sources}
        for metric, ref in zip(METRICS, paper, strict=True):
            mean, std = _mean_std([e["metrics"][metric] for e in seeds.values()])
            row[metric] = {"paper": ref, "ours": round(mean, 4), "std": round(std, 4), "gap": round(mean - ref, 4)}
        row["steps"] = [e["metrics"]["steps"] for e in seeds.values()]
        row["epochs"] = [round(e["metrics"]["epochs"], 1) for e in seeds.values()]
        row["train_minutes"] = [round(e["metrics"]["train_seconds"] / 60, 1) for e in seeds.values()]
        row["converged"] = [e["converged"] for e in seeds.values()]
        row["kl"] = [round(e["metrics"].get("valid_kl") or 0.0, 4) for e in seeds.values()]  # validation KL (seq2seq: none)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| row | seeds | BLEU-P paper / ours (gap) | BLEU-R paper / ours (gap) | Dist-1 paper / ours (gap) | "
            "Dist-2 paper / ours (gap) | KL | steps | epochs | min | converged |")  # fmt: skip
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        cells = []
        for m in METRICS:
            c = r[m]
            std = f" +- {c['std']:.3f}" if len(r["seeds"]) > 1 else ""
            cells.append(f"{c['paper']:.3f} / {c['ours']:.3f}{std} ({c['gap']:+.3f})")
        runs = [", ".join(map(str, r[k])) for k in ("kl", "steps", "epochs", "train_minutes")]
        runs.append(", ".join("yes" if c else "no" for c in r["converged"]))
        seeds = ", ".join(map(str, r["seeds"]))
        lines.append(f"| {r['row']} | {seeds} | " + " | ".join(cells + runs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="*", help="compare output folders (results.json, runs/)")
    ap.add_argument("--record", type=Path, help="add the folders' runs to this ledger (one JSON per run)")
    ap.add_argument("--unconverged", action="store_true", help="--record runs that stopped at their cap too")
    ap.add_argument("--ledger", type=Path, help="build the table from this ledger instead of folders")
    ap.add_argument("--out", type=Path, help="also write table.md and table.json here")
    args = ap.parse_args()
    if bool(args.folders) == bool(args.ledger):
        ap.error("give compare folders or --ledger, not both or neither")
    found = read_ledger(args.ledger) if args.ledger else entries(args.folders)
    if args.record:
        if args.ledger:
            ap.error("--record takes runs from folders, not from a ledger")
        for path in record(found, args.record, args.unconverged):
            print(f"recorded {path}")
    rows = build(found)
    text = markdown(rows)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(text, encoding="utf-8")
        (args.out / "table.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
