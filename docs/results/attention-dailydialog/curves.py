"""Validation curves of runs (from their TensorBoard logs): -ELBO, KL and source use at every validation.

    python docs/results/attention-dailydialog/curves.py RUN_DIR [RUN_DIR ...] [--every 2000] > curves.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

KEYS = ("valid/elbo", "valid/kl", "valid/source_use")


def curves(run: Path) -> dict[int, dict[str, float]]:
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    rows: dict[int, dict[str, float]] = {}
    for key in KEYS:
        if key in acc.Tags()["scalars"]:
            for event in acc.Scalars(key):
                rows.setdefault(event.step, {})[key.split("/")[1]] = event.value
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--every", type=int, default=2000, help="print every this many steps")
    args = p.parse_args()
    print("| run | step | -ELBO | KL | source use (nats) |\n|---|---:|---:|---:|---:|")
    for run in args.runs:
        for step, row in sorted(curves(run).items()):
            if step % args.every == 0:
                cells = " | ".join(f"{row[k]:.3f}" if k in row else "–" for k in ("elbo", "kl", "source_use"))
                print(f"| {run.parent.name} | {step} | {cells} |")


if __name__ == "__main__":
    main()
