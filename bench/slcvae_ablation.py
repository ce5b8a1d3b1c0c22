"""SLCVAE design choices on the synthetic corpus, at the demo's budget (configs/demo.toml, 3,000 steps).

    python bench/slcvae_ablation.py --out runs/ablation [--workers 2] [--only NAME ...]

Trains each variant (model + --set overrides on top of the demo config), generates 10 greedy
samples per unseen test source with z from the prior, and prints a markdown table of mode
precision / coverage, Distinct-2, KL and active units. Each run uses 1 thread so `--workers 2`
fills the 2-core machine; results go to OUT/ablation.json and OUT/ablation.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path

# the SLCVAE defaults this ablation was run with (before issue 10): nll distance, no BOW base; variants override them
LEGACY = ["cvae.bow_weight=0.0", "slcvae.distance=nll"]

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "seq2seq": ("seq2seq", []),
    "cvae": ("cvae", []),
    "cvae-anneal": ("cvae-anneal", []),
    "cvae-freebits": ("cvae-freebits", []),
    "cvae-wdrop": ("cvae-wdrop", []),
    "cvae-bow": ("cvae-bow", []),
    "slcvae (demo config)": ("slcvae", []),
    "slcvae warmup 0": ("slcvae", ["slcvae.start=steps", "slcvae.warmup_steps=0"]),
    "slcvae warmup 200": ("slcvae", ["slcvae.start=steps", "slcvae.warmup_steps=200"]),
    "slcvae mean_sq lambda 0.1": ("slcvae", ["slcvae.distance=mean_sq", "slcvae.label_weight=0.1"]),
    "slcvae mean_sq lambda 1": ("slcvae", ["slcvae.distance=mean_sq"]),
    "slcvae sample_sq lambda 0.1": ("slcvae", ["slcvae.distance=sample_sq", "slcvae.label_weight=0.1"]),
    "slcvae unbounded label": ("slcvae", ["slcvae.label_bound=0.0"]),
    "slcvae mean_sq lambda 0.1 unbounded": (
        "slcvae",
        ["slcvae.distance=mean_sq", "slcvae.label_weight=0.1", "slcvae.label_bound=0.0"],
    ),
    "slcvae own labeler": ("slcvae", ["slcvae.labeler_encoder=own"]),
    "slcvae label every 4": ("slcvae", ["slcvae.label_every=4"]),
}


def run_one(args: tuple[str, str, list[str], Path, int, float]) -> tuple[str, dict]:
    label, model, sets, out, max_steps, max_minutes = args
    from slcvae.cli.demo import config_path
    from slcvae.config import build_config
    from slcvae.data.corpus import read_corpus
    from slcvae.evaluation import evaluate_texts
    from slcvae.generation import GenerateConfig, generate
    from slcvae.training import load_model_dir, train

    run_dir = out / label.replace(" ", "_")
    extra = [
        f"train.max_steps={max_steps}",
        f"train.max_minutes={max_minutes}",
        "train.threads=1",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    cfg = build_config(model, config_path(), [*sets, *extra])
    summary = train(cfg, out / "data" / "train.tsv", out / "data" / "valid.jsonl", run_dir)
    tests = read_corpus(out / "data" / "test.jsonl")
    model_, tokenizer, cfg = load_model_dir(run_dir, "last")
    samples = generate(model_, tokenizer, tests, cfg.data, GenerateConfig(num_samples=10))
    m = evaluate_texts(samples, [ex.targets for ex in tests], modes=True)
    m.update(
        kl=summary["valid"]["kl"],
        active_units=summary["valid"].get("active_units", 0),
        steps=summary["steps"],
        train_seconds=summary["train_seconds"],
        sets=sets,
    )
    print(f"{label}: cov {m['mode_coverage']:.3f} P {m['mode_precision']:.3f} KL {m['kl']:.2f}", file=sys.stderr, flush=True)
    return label, m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, default=5.0)
    p.add_argument("--only", nargs="*", help="variant names to run (default: all); finished ones are skipped")
    p.add_argument("--variant", nargs="+", action="append", default=[], help="extra variant: LABEL MODEL [section.key=value ...]")
    args = p.parse_args()
    from slcvae.data.synth import synth

    synth(args.out / "data", seed=0)
    variants = dict(VARIANTS)
    for label, model, *sets in args.variant:
        variants[label] = (model, sets)
    variants = {label: (m, [*LEGACY, *sets] if m == "slcvae" else sets) for label, (m, sets) in variants.items()}
    chosen = args.only or list(variants)
    # finished variants (in OUT/ablation.json) are kept, not rerun: add variants one at a time
    saved = args.out / "ablation.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    jobs = [(n, *variants[n], args.out, args.max_steps, args.max_minutes) for n in chosen if n not in results]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results.update(pool.map(run_one, jobs))
    keys = [
        "mode_precision",
        "mode_coverage",
        "bleu_precision",
        "bleu_recall",
        "distinct_2",
        "kl",
        "active_units",
        "steps",
        "train_seconds",
    ]
    lines = ["| variant | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" if isinstance(m[k], float) else str(m[k]) for k in keys) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "ablation.md").write_text(table)
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
