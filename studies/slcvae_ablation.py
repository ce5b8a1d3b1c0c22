"""SLCVAE design choices on the synthetic corpus, at the demo's budget: the shipped compare spec
src/slcvae/configs/ablation-compare.toml (configs/demo.toml, 3,000 steps per run, 10 greedy samples
per unseen test source, z from the prior).

    python studies/slcvae_ablation.py --out runs/ablation [--workers 2] [--only NAME ...]

Synthesizes the corpus into OUT/data, then runs the spec through `slcvae compare` (resumable:
finished runs are skipped), and prints a markdown table of mode precision / coverage, BLEU,
Distinct-2, validation KL and active units; OUT/ablation.md and the compare outputs
(results.json, report.md, plots) are written there.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from slcvae.data.synth import synth
from slcvae.pipeline import compare
from slcvae.pipeline.demo import config_path

KEYS = ["mode_precision", "mode_coverage", "bleu_precision", "bleu_recall", "distinct_2", "valid_kl", "valid_active_units",
        "steps", "train_seconds"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--only", nargs="*", help="entry names to run (default: all)")
    args = p.parse_args()
    data = args.out / "data"
    synth(data, seed=0)
    overrides = {"out": str(args.out), "train": str(data / "train.tsv"), "valid": str(data / "valid.jsonl"),
                 "test": str(data / "test.jsonl"), "config": str(config_path()), "workers": args.workers}  # fmt: skip
    spec = compare.load_spec(Path(str(resources.files("slcvae") / "configs" / "ablation-compare.toml")), overrides)
    if args.only:
        spec.entries = {name: e for name, e in spec.entries.items() if name in args.only}
    results = compare.run(spec)["results"]
    lines = ["| variant | " + " | ".join(KEYS) + " |", "|---|" + "---:|" * len(KEYS)]
    for name, by_seed in results.items():
        m = next(iter(by_seed.values()))
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" if isinstance(m[k], float) else str(m[k]) for k in KEYS) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "ablation.md").write_text(table)


if __name__ == "__main__":
    main()
