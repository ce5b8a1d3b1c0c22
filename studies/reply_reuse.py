"""Where corpus-level Distinct goes: replies reused across contexts vs varied within one (issue 9, design.md
finding 9).

    python studies/reply_reuse.py data/dd-paper/test.jsonl runs/compare/paper-dailydialog/runs/kla-wd/seed1/test.pred.jsonl [...]

For the references (one per row of the test file) and each prediction file (`slcvae generate`'s jsonl): Distinct-1/2
over everything (the paper's corpus-level metric), over the first sample per source only, the mean per-source
Distinct-2 of the N samples, how many different replies there are in all and what share of all replies the 10 and
100 most frequent take. Texts go through the scoring tokenization (`score_tokens`) first, as in `evaluate`.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path

from slcvae.evaluation.metrics import distinct, read_predictions, score_tokens


def reuse(rows: list[list[str]]) -> dict[str, float]:
    """rows: [sources][samples] texts -> the figures above."""
    counts = collections.Counter(" ".join(score_tokens(text)) for samples in rows for text in samples)
    total = sum(counts.values())
    return {
        "sources": len(rows),
        "replies": total,
        "different_replies": len(counts),
        "top10_share": sum(n for _, n in counts.most_common(10)) / total,
        "top100_share": sum(n for _, n in counts.most_common(100)) / total,
        "distinct_1": distinct(rows, 1),
        "distinct_2": distinct(rows, 2),
        "first_sample_distinct_2": distinct([[samples[0] for samples in rows]], 2),
        "per_source_distinct_2": statistics.fmean(distinct([samples], 2) for samples in rows),
        "top3": [text for text, _ in counts.most_common(3)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("test", type=Path, help="the test jsonl (source, target)")
    ap.add_argument("predictions", type=Path, nargs="+", help="test.pred.jsonl files")
    args = ap.parse_args()
    with args.test.open() as f:
        references = [[json.loads(line)["target"]] for line in f if line.strip()]
    table = {"references": reuse(references)}
    table["references"]["per_source_distinct_2"] = float("nan")  # one reference per row: not a set of N
    for path in args.predictions:
        table[str(path)] = reuse([samples for _, samples in read_predictions(path)])
    keys = [
        "sources",
        "replies",
        "different_replies",
        "top10_share",
        "top100_share",
        "distinct_1",
        "distinct_2",
        "first_sample_distinct_2",
        "per_source_distinct_2",
    ]
    print("| file | " + " | ".join(keys) + " | most frequent |")
    print("|---" * (len(keys) + 2) + "|")
    for name, row in table.items():
        cells = [f"{row[k]:.4f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " | " + " / ".join(row["top3"]) + " |")


if __name__ == "__main__":
    main()
