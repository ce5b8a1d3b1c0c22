"""Score the human replies as if they were a model's samples: the Distinct a corpus's own references reach.

    python studies/reference_scores.py [--data data/dd-paper/valid.jsonl] [--copies 1 10] [--random 10 --encoder NAME]

Each source's first reference is its "sample", once and then repeated --copies times (10 = the table's 10 replies
per context, all the same reply), scored with evaluate_texts as `slcvae evaluate` scores a model. Distinct-n
divides by all generated tokens, so k copies divide it by k: a model whose 10 replies per context were each the
human reply would score one tenth of the human Distinct. Prints one JSON line per copy count
(docs/results/paper-dailydialog/search/).

--random N also scores N replies per source drawn (seed 0) from the other sources' references: the relevance a
model that never reads its source reaches with human-written text, the floor for BLEU-P/R and, with --encoder, for
the meaning-level metrics (docs/results/pretrained-dailydialog/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

from slcvae.data.corpus import read_corpus
from slcvae.evaluation import evaluate_texts, meaning_scores

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("distinct_1", "distinct_2", "avg_length")


def other(rng: random.Random, pool: list[str], own: list[str]) -> str:
    """A reference drawn from the pool that is not one of this source's own."""
    if set(pool) <= set(own):
        raise SystemExit("--random: every reference belongs to one source; there is no other source's to draw")
    while (text := rng.choice(pool)) in own:
        pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "dd-paper" / "valid.jsonl")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--random", type=int, default=0, help="also N replies per source from other sources' references")
    ap.add_argument("--encoder", default="", help="with --random: the meaning-level metrics with this sentence encoder")
    args = ap.parse_args()
    examples = read_corpus(args.data)
    refs = [ex.targets for ex in examples]
    if args.random:
        rng, pool = random.Random(0), [t for r in refs for t in r]
        drawn = [[other(rng, pool, r) for _ in range(args.random)] for r in refs]
        scores = evaluate_texts(drawn, refs)
        if args.encoder:
            scores.update(meaning_scores(drawn, refs, args.encoder))
        keep = ("paper_bleu_precision", "paper_bleu_recall", "bleu_precision", "bleu_recall", "distinct_2",
                "semantic_precision", "semantic_recall", "semantic_diversity", "meaning_distinct")  # fmt: skip
        print(json.dumps({"data": os.path.relpath(args.data, ROOT), "random": args.random, "sources": len(examples),
                          **{key: round(float(scores[key]), 4) for key in keep if key in scores}}))  # fmt: skip
    for k in args.copies:
        if k < 1:
            raise SystemExit(f"--copies: {k} must be at least 1")
        scores = evaluate_texts([[ex.targets[0]] * k for ex in examples], refs)
        print(json.dumps({"data": os.path.relpath(args.data, ROOT), "copies": k, "sources": len(examples),
                          **{key: round(float(scores[key]), 4) for key in KEYS}}))  # fmt: skip


if __name__ == "__main__":
    main()
