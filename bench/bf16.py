"""bf16 autocast in training: same loss curve? how much faster? (reference CVAE, DailyDialog batches)

    python bench/bf16.py [--steps 40]

Trains the same model from the same seed twice on the same DailyDialog batches, in fp32 and under
`torch.autocast("cpu", dtype=torch.bfloat16)`, and prints both wall times and the largest relative
difference between the two reconstruction-loss curves.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import slcvae.benchmark.throughput as T  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    if not T.DAILYDIALOG.is_dir():
        sys.exit(f"{T.DAILYDIALOG} is absent")
    batches, _, _ = T.dailydialog_batches(args.steps)
    curves, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        model, _, _ = T.ours(T.VOCAB)  # seeded: the same initial weights both times
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        torch.manual_seed(0)
        curve, start = [], time.perf_counter()
        for batch, _, _ in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                _, losses = model(batch)
            opt.zero_grad(set_to_none=True)
            losses["loss"].float().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            curve.append(losses["rec"].item())
        seconds[precision], curves[precision] = time.perf_counter() - start, curve
    diff = max(abs(a - b) / abs(a) for a, b in zip(curves["fp32"], curves["bf16"], strict=True))
    print(f"{args.steps} steps: fp32 {seconds['fp32']:.1f} s, bf16 {seconds['bf16']:.1f} s "
          f"({seconds['fp32'] / seconds['bf16']:.2f}x); largest relative loss difference {diff:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
