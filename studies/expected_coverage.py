"""Mode coverage of 10 samples per source, in expectation: a model's coverage without the noise of one draw.

    python studies/expected_coverage.py --spec docs/results/schedule/base7.toml [--draws 100] [--k 10]

`slcvae compare` scores the 10 samples it drew once per test source. With 48-80 sources that one draw
moves a run's coverage by a few hundredths (several times the gaps issue 10 chases), so two models that
differ by 0.02 cannot be told apart from 3 seeds of it. For every finished latent-variable run of a
compare spec this draws `draws` samples per test source the way the spec's generation does (z from
the prior, greedy; the spec's checkpoint), and estimates the coverage k of them would have without bias
(`metrics.mode_coverage_at`, the pass@k estimator over targets). Printed: per run the scored coverage
(results.json) beside the estimate and the precision of the draws, then per model mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from slcvae import Generator
from slcvae.data.corpus import read_corpus
from slcvae.evaluation.metrics import mode_coverage_at, mode_precision_coverage
from slcvae.pipeline.compare import load_spec


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True, help="a compare spec whose runs have finished")
    ap.add_argument("--draws", type=int, default=100, help="samples per test source (>= k)")
    ap.add_argument("--k", type=int, default=10, help="the sample count whose coverage is estimated (compare's num_samples)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of every run")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    test = read_corpus(spec.test)
    if spec.test_sources:  # compare scores the first test_sources sources only
        test = test[: spec.test_sources]
    scored = json.loads((spec.out / "results.json").read_text())["results"] if (spec.out / "results.json").is_file() else {}
    checkpoint = spec.generate.get("checkpoint", "best")
    print(f"| model | seed | scored coverage ({args.k} samples) | expected coverage ({args.draws} draws) | precision |")
    print("|---|---|---:|---:|---:|")
    by_model: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in sorted((spec.out / "runs").glob("*/seed*")):
        if not (run / "summary.json").is_file():
            continue
        gen = Generator.from_pretrained(run, checkpoint=checkpoint, seed=args.seed)
        if not getattr(gen.model, "has_latent", False):
            continue
        outputs = gen.generate([ex.source_text for ex in test], args.draws, seed=args.seed)
        cov = [mode_coverage_at(o, ex.targets, args.k) for o, ex in zip(outputs, test, strict=True)]
        prec = [mode_precision_coverage(o, ex.targets)[0] for o, ex in zip(outputs, test, strict=True)]
        model, seed = run.parent.name, run.name.removeprefix("seed")
        got = scored.get(model, {}).get(seed, {}).get("mode_coverage")
        row = {"scored": got, "expected": sum(cov) / len(cov), "precision": sum(prec) / len(prec)}
        for key, value in row.items():
            if value is not None:
                by_model[model][key].append(value)
        shown = "–" if got is None else f"{got:.3f}"
        print(f"| {model} | {seed} | {shown} | {row['expected']:.3f} | {row['precision']:.3f} |", flush=True)
    print("\n| model | scored coverage | expected coverage | precision |\n|---|---:|---:|---:|")
    for model, cols in by_model.items():
        cells = [mean_std(cols[c]) if cols[c] else "–" for c in ("scored", "expected", "precision")]
        print(f"| {model} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
