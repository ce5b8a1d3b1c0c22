#!/bin/bash
# The GPU part of issue 9: docs/results/paper-dailydialog/search/paper-dailydialog-gpu.toml (the paper's CVAE rows, all runs at once on one
# CUDA machine for the spec's 6.5 minutes, then scored there), plus the CUDA tests. Writes to $OUT: log.txt,
# test_cuda.log, results.tgz (the compare folder without checkpoints) and weights.tgz.* (each run's best weights,
# no optimizer state, for runs under 8 MB).
#   usage: OUT=folder bash studies/gpu_sweep.sh [HARD_STOP_SECONDS] [WORKERS] [DEVICE]
# Needs the prepared data (data/dd-paper) and the package importable (PYTHONPATH=src or pip install -e .).
set -u
T=${1:-560}; W=${2:-13}; DEV=${3:-cuda}
OUT=${OUT:?set OUT to a folder for the logs and archives}
SPEC=docs/results/paper-dailydialog/search/paper-dailydialog-gpu.toml; DIR=runs/compare/paper-dailydialog-gpu
start=$(date +%s)
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0], 'cuda', torch.cuda.is_available())"
if [ "$DEV" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  # MPS lets the runs' kernels share the GPU instead of time-slicing whole contexts; off if it does not come up
  if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
    timeout 60 python3 -c "import torch; torch.zeros(1).cuda(); print('MPS on')" || { echo quit | nvidia-cuda-mps-control; echo "MPS off"; }
  fi
  (timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/test_cuda.log" 2>&1; echo "rc $?" >> "$OUT/test_cuda.log") &
  (nvidia-smi dmon -s u -d 20 > "$OUT/dmon.log" 2>&1) &
fi
left=$((T - ($(date +%s) - start)))
timeout -s TERM "$left" python3 -m slcvae compare --spec $SPEC --device "$DEV" --workers "$W" > "$OUT/compare.log" 2>&1
echo "compare rc $? after $(($(date +%s) - start)) s"
sleep 2
python3 - "$DIR" <<'PY'
import json, pathlib, sys, torch
for run in sorted(pathlib.Path(sys.argv[1], "runs").glob("*/seed*")):
    last = run / "last.pt"
    if not last.is_file():
        print(run, "no checkpoint"); continue
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    st = ckpt["state"]
    scored = (run / "eval.json").is_file()
    print(f"{run.parent.name}/{run.name}: step {st['step']} in {st['seconds']:.0f} s = {st['step'] / max(st['seconds'], 1):.1f} "
          f"steps/s, best -elbo {st['best']:.3f}, stale {st['stale']}, finished {(run / 'summary.json').is_file()}, scored {scored}")
    best = run / "best.pt"
    if best.is_file() and best.stat().st_size < 8e6 * 3:  # model only: ~1/3 of the checkpoint
        b = torch.load(best, map_location="cpu", weights_only=False)
        torch.save({"model": b["model"], "state": b["state"], "metrics": b["metrics"]}, run / "best.weights.pt")
PY
tar czf "$OUT/results.tgz" --exclude=tb --exclude='*.pt' "$DIR" "$OUT/dmon.log" 2>/dev/null
tar cf - $(find "$DIR" -name best.weights.pt) 2>/dev/null | split -b 15m - "$OUT/weights.tgz."
rm -f "$OUT/dmon.log"
ls -la "$OUT"
