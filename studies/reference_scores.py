"""Score the human replies as if they were a model's samples: the Distinct a corpus's own references reach.

    python studies/reference_scores.py [--data data/dd-paper/valid.jsonl] [--copies 1 10]

Each source's first reference is its "sample", once and then repeated --copies times (10 = the table's 10 replies
per context, all the same reply), scored with evaluate_texts as `slcvae evaluate` scores a model. Distinct-n
divides by all generated tokens, so k copies divide it by k: a model whose 10 replies per context were each the
human reply would score one tenth of the human Distinct. Prints one JSON line per copy count
(docs/results/paper-dailydialog/search/).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from slcvae.data.corpus import read_corpus
from slcvae.evaluation import evaluate_texts

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("distinct_1", "distinct_2", "avg_length")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "dd-paper" / "valid.jsonl")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 10])
    args = ap.parse_args()
    examples = read_corpus(args.data)
    refs = [ex.targets for ex in examples]
    for k in args.copies:
        if k < 1:
            raise SystemExit(f"--copies: {k} must be at least 1")
        scores = evaluate_texts([[ex.targets[0]] * k for ex in examples], refs)
        print(json.dumps({"data": os.path.relpath(args.data, ROOT), "copies": k, "sources": len(examples),
                          **{key: round(float(scores[key]), 4) for key in KEYS}}))  # fmt: skip


if __name__ == "__main__":
    main()
