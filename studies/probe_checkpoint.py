"""Score one checkpoint of a run, finished or not, with the table's decoding: a probe at equal steps.

    python studies/probe_checkpoint.py RUN_DIR CHECKPOINT.pt [--data data/dd-paper/valid.jsonl] [--threads 1]
                                     [--latent posterior]

RUN_DIR holds the run's config.json and tokenizer (a `slcvae train --out` folder, finished or still training);
CHECKPOINT.pt is any checkpoint it wrote (best.pt, last.pt, or a copy of last.pt taken at a given step). The
model decodes 10 replies per source, greedy with z from the prior (configs/compare/paper-dailydialog.toml's
[generate]), and prints one JSON line: the step and the validation losses saved in the checkpoint, and the
scores of evaluate_texts on --data (the validation file by default: settings are chosen there, never on test).
Used to compare two model sizes at the same number of steps before either has converged
(docs/results/paper-dailydialog/x4-probe/). `--latent posterior` draws z from q(z|x,y) given each source's
reference instead of the prior: not the table's protocol but its ceiling, what the decoder writes when z is
told the answer (docs/results/paper-dailydialog/search/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from slcvae.data.corpus import read_corpus
from slcvae.evaluation import evaluate_texts
from slcvae.generation import GenerationConfig, generate
from slcvae.generation.decode import LATENTS
from slcvae.loading import load_run_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("paper_bleu_precision", "paper_bleu_recall", "distinct_1", "distinct_2", "intra_distinct_2",
        "unique_per_source", "avg_length")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "dd-paper" / "valid.jsonl")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--latent", choices=LATENTS, default="prior", help="where z comes from (prior: the table's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, cfg, ckpt = load_run_checkpoint(args.run, args.checkpoint)
    examples = read_corpus(args.data)
    gen = GenerationConfig(num_return_sequences=10, latent=args.latent)
    samples = generate(model, tok, examples, cfg.data, gen)  # what `slcvae compare` scores: one chunk, gen.seed
    scores = evaluate_texts(samples, [ex.targets for ex in examples])
    valid = ckpt.get("metrics") or {}
    out = {"run": str(args.run), "checkpoint": args.checkpoint.name, "latent": args.latent, "step": ckpt["state"]["step"],
           "valid_elbo": valid.get("elbo"), "valid_kl": valid.get("kl"), "valid_active_units": valid.get("active_units"),
           "sources": len(examples), **{k: round(float(scores[k]), 4) for k in KEYS}}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
