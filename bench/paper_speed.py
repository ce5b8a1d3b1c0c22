"""Training speed at the SLCVAE paper's DailyDialog size (issue 9): steps/s of the real training step.

    python bench/paper_speed.py [--model cvae] [--steps 200] [--threads 1] [--profile] [--set k=v ...]

Builds the model from configs/paper-dailydialog.toml (2-layer GRUs, 32 / 32, latent 8, batch 64) on the
paper's windowed DailyDialog (`slcvae prepare dailydialog ../shared/data/dailydialog data/dd-paper --windows 6`),
and times what the trainer does per step: collate a bucketed batch, forward every phase, backward, clip, Adam.
Prints steps/s (after 20 warm-up steps) and, with --profile, the top operators by self CPU time. With
`--set data.encoder=all-MiniLM-L6-v2` the cost of a pretrained reader (frozen, or `--set data.encoder_tune=1`); the
one-off encoding is bench/encoding_cache.py's figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from slcvae.config import build_config
from slcvae.data.batching import bucket_order, collate, encode, fit_tokenizer
from slcvae.data.corpus import read_pairs
from slcvae.models import build_model
from slcvae.training.trainer import optimizers, phase_params, phase_step

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cvae")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "dd-paper", help="a prepared folder or a train file")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "paper-dailydialog.toml")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args()
    train = args.data if args.data.is_file() else args.data / "train.jsonl"
    if not train.is_file():
        sys.exit(f"{train} not found: run `slcvae prepare dailydialog ../shared/data/dailydialog "
                 f"{args.data} --windows 6` first")  # fmt: skip
    torch.set_num_threads(args.threads)
    cfg = build_config(args.model, args.config, args.sets)
    if cfg.data.encoder:  # --set data.encoder=...: what training records before it encodes
        from slcvae.pretrained import bind

        bind(cfg.data)
    examples = read_pairs(train)
    tok = fit_tokenizer(examples, cfg.data)
    data = encode(examples, tok, cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg, tok.vocab_size, tok.unk_id)
    groups = model.optimizer_groups(cfg.train.lr)
    optims = optimizers(groups)
    params = phase_params(groups)
    batches = bucket_order(data.lengths(), cfg.train.batch_size, cfg.train.bucket_batches, 0, 0)
    model.train()

    def run(n: int, offset: int) -> None:
        for i in range(n):
            batch = collate(data, batches[(offset + i) % len(batches)], tok)
            model.observe(offset + i, 0.5)
            for phase in model.phases_at(offset + i):
                losses = phase_step(model, batch, offset + i, phase, optims[phase], params[phase], cfg.train.grad_clip)
                losses["loss"].item()  # the trainer reads every loss back each step

    run(20, 0)
    start = time.perf_counter()
    run(args.steps, 20)
    seconds = time.perf_counter() - start
    out = {"model": args.model, "threads": args.threads, "steps": args.steps, "steps_per_s": round(args.steps / seconds, 2),
           "epoch_minutes": round(len(batches) / (args.steps / seconds) / 60, 2), "vocab": tok.vocab_size,
           "torch": torch.__version__}  # fmt: skip
    print(json.dumps(out))
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run(30, 20 + args.steps)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
