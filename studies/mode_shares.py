"""Which valid targets a model's samples hit, per source: are the styles drawn evenly?

    python studies/mode_shares.py --spec docs/results/schedule/base7.toml

Mode coverage (share of a source's valid targets among its samples) is capped by chance: with k valid
targets drawn uniformly n times, a source shows all k with probability sum_j (-1)^j C(k, j) (1 - j/k)^n
(k = 4, n = 10: 0.781). For every finished run of a compare spec this prints the overall share of samples
on each valid target (by its position in the test file's target list; texts compared after the scorer's
tokenization, `mode_key`, as mode precision and coverage are), the number of sources showing
1..k of their targets, and how many sources show all of them against that uniform expectation, so a
coverage gap can be read as uneven drawing (prior mass split unevenly over the styles) or as invalid
samples (mode precision).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from math import comb
from pathlib import Path

from slcvae.evaluation.metrics import mode_key
from slcvae.pipeline.compare import load_spec


def all_shown(k: int, n: int) -> float:
    """P(n uniform draws over k targets show all k), by inclusion-exclusion."""
    return sum((-1) ** j * comb(k, j) * (1 - j / k) ** n for j in range(k + 1))


def shares(test: list[dict], preds: list[dict]) -> tuple[list[float], Counter, int, float]:
    """Share of valid samples per target position, sources by number of targets shown, sources showing all
    their targets, and that count's expectation under uniform draws."""
    if len(test) != len(preds):
        raise ValueError(f"{len(preds)} predictions for {len(test)} test sources")
    hits, shown, full, expected = Counter(), Counter(), 0, 0.0
    for ref, pred in zip(test, preds, strict=True):
        if ref["source"] != pred["source"]:
            raise ValueError(f"prediction for {pred['source']!r} where the test file has {ref['source']!r}")
        keys = [mode_key(t) for t in ref["targets"]]  # matched as the scorer matches modes
        got = Counter(keys.index(k) for k in map(mode_key, pred["samples"]) if k in keys)
        hits.update(got)
        shown[len(got)] += 1
        full += len(got) == len(ref["targets"])
        expected += all_shown(len(ref["targets"]), len(pred["samples"]))
    total = sum(hits.values()) or 1
    return [hits[i] / total for i in range(max(hits, default=-1) + 1)], shown, full, expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True, help="a compare spec whose runs have finished")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    test = [json.loads(line) for line in spec.test.read_text().splitlines() if line.strip()]
    if spec.test_sources:  # compare scores the first test_sources sources only
        test = test[: spec.test_sources]
    print("| model | seed | share per target | sources by targets shown | all shown | expected (uniform) |")
    print("|---|---|---|---|---:|---:|")
    for pred_file in sorted((spec.out / "runs").glob("*/seed*/test.pred.jsonl")):
        preds = [json.loads(line) for line in pred_file.read_text().splitlines() if line.strip()]
        share, shown, full, expected = shares(test, preds)
        row = [pred_file.parent.parent.name, pred_file.parent.name, " / ".join(f"{s:.2f}" for s in share),
               " ".join(f"{j}:{shown[j]}" for j in sorted(shown)), str(full), f"{expected:.1f}"]  # fmt: skip
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
