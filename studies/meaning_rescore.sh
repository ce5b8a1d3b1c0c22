#!/bin/bash
# Meaning-level metrics (all-MiniLM-L6-v2) of runs scored before [evaluate] encoder existed, from their saved test
# predictions: the attention study's DailyDialog CVAE + BOW row, the control of docs/results/pretrained-dailydialog.
#   bash studies/meaning_rescore.sh runs/compare/att-kla-wd-bow-att-55min/runs/kla-wd-bow-att data/dd-paper/test.jsonl \
#       > docs/results/pretrained-dailydialog/control-meaning.jsonl
set -euo pipefail
runs=$1 test=$2
for seed in "$runs"/seed*; do
  metrics=$(slcvae evaluate --predictions "$seed/test.pred.jsonl" --references "$test" --encoder all-MiniLM-L6-v2 --json)
  echo "{\"run\": \"$seed\", \"metrics\": $metrics}"
done
