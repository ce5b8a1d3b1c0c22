"""No-grad speed at the SLCVAE paper's DailyDialog size: one validation pass and greedy generation.

    python bench/paper_eval_speed.py RUN_DIR [--sources 640] [--threads 1] [--repeats 3]

RUN_DIR is a trained run (`slcvae train --out`, or runs/compare/.../runs/NAME/seedS). Times, with that run's
model (best.pt), tokenizer and config, on the paper's windowed DailyDialog (data/dd-paper, see paper_speed.py):
- validate_s: the trainer's validation pass over all of valid.jsonl (every phase's losses, no gradients);
- generate_replies_per_s: greedy decoding with z from the prior, 10 replies for each of the first --sources
  test contexts (the table's decoding), as `slcvae generate` runs it.
Each figure is the median of --repeats runs after one warm-up run. It imports `slcvae` from wherever Python
finds it, so `PYTHONPATH=OTHER_CHECKOUT/src python bench/paper_eval_speed.py RUN` times another version of
the code on the same checkpoint (docs/results/paper-dailydialog/table/speed.md: padded vs packed GRUs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import slcvae
from slcvae.benchmark.timing import median_time
from slcvae.data.batching import encode
from slcvae.data.corpus import read_pairs
from slcvae.evaluation.validation import validate
from slcvae.generation import GenerationConfig, generate
from slcvae.loading import load_model_dir

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "dd-paper")
    ap.add_argument("--sources", type=int, default=640)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, cfg = load_model_dir(args.run)
    valid = encode(read_pairs(args.data / "valid.jsonl"), tok, cfg.data)
    test = read_pairs(args.data / "test.jsonl")[: args.sources]
    gen = GenerationConfig(num_return_sequences=10, latent="prior")
    done = 10**6  # a step past every schedule: validation weighs the losses as a finished run does
    validate_s = median_time(lambda: validate(model, valid, tok, cfg.train.batch_size, done), args.repeats)
    generate_s = median_time(lambda: generate(model, tok, test, cfg.data, gen), args.repeats)
    print(json.dumps({"model": cfg.model_name, "code": str(Path(slcvae.__file__).parents[1]), "threads": args.threads,
                      "validate_s": round(validate_s, 2), "valid_sources": len(valid.lengths()),
                      "generate_replies_per_s": round(10 * len(test) / generate_s, 1), "sources": len(test)}))  # fmt: skip


if __name__ == "__main__":
    main()
