"""Peak RSS while training the reference CVAE on DailyDialog for one epoch.

    python bench/memory.py --out runs/memory [--steps N] [--model cvae]

Runs `slcvae train` (reference sizes, batch 30, 3 context turns) as a child process and samples
its resident memory (VmRSS) every 2 seconds; prints RSS at each tenth of the run and writes
OUT/memory.json. Flat numbers after the first tenth mean no growth across the epoch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAILYDIALOG = ROOT.parent / "shared" / "data" / "dailydialog"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/memory"))
    p.add_argument("--steps", type=int, default=2536, help="default: one epoch of DailyDialog (76,052 pairs / 30)")
    p.add_argument("--model", default="cvae")
    args = p.parse_args()
    if not DAILYDIALOG.is_dir():
        sys.exit(f"{DAILYDIALOG} is absent")
    data = args.out / "data"
    if not (data / "train.jsonl").is_file():
        subprocess.run(
            [sys.executable, "-m", "slcvae", "prepare", "dailydialog", str(DAILYDIALOG), str(data), "--context-turns", "3"],
            check=True,
        )
    run_dir = args.out / args.model
    cmd = [sys.executable, "-m", "slcvae", "train", "--model", args.model, "--train", str(data / "train.jsonl"),
           "--valid", str(data / "valid.jsonl"), "--out", str(run_dir), "--max-steps", str(args.steps),
           "--set", f"train.eval_every={args.steps}", "--set", "train.log_every=50", "--set", "train.progress=false"]  # fmt: skip
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    child = subprocess.Popen(cmd)
    samples = []
    start = time.monotonic()
    while child.poll() is None:
        samples.append((time.monotonic() - start, rss_mb(child.pid)))
        time.sleep(2)
    if child.returncode != 0:
        sys.exit(f"training failed with exit code {child.returncode}")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    tenths = [max(r for t, r in samples if t <= samples[-1][0] * k / 10) for k in range(1, 11)]
    result = {"steps": args.steps, "seconds": samples[-1][0], "peak_rss_mb": max(r for _, r in samples),
              "peak_rss_mb_by_tenth": tenths, "final_train_rec": log[-1].get("main/rec")}  # fmt: skip
    (args.out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
