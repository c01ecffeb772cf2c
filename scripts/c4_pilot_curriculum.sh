#!/usr/bin/env bash
# Issue 14 pilot, curriculum lever: the same 4-number data and schedule as scripts/c4_pilot.sh, but each
# model starts from the bundled 3-number model of its format (models/apr-cpu, models/sosp-cpu), which
# already writes the trace format. Run scripts/c4_pilot.sh first (it makes the data).
#   STEPS=750 LR=1e-3 scripts/c4_pilot_curriculum.sh
set -euo pipefail
STEPS=${STEPS:-750}
LR=${LR:-1e-3}
LIMIT=${LIMIT:-100}
D=runs/c4
TAG=${TAG:-cur-s${STEPS}}
export OMP_NUM_THREADS=1
for f in apr sosp; do
  apr train sft -d $D/${f}_sft.jsonl -o runs/c4-$f-$TAG --init-from models/$f-cpu --context-length 1024 --truncate \
      --tokens-per-batch 8192 --lr "$LR" --warmup-steps 20 --max-steps "$STEPS" --val-fraction 0.02 \
      --eval-every 250 --eval-tokens 20000 --save-every 250 --resume --no-progress &
done
wait
apr eval -p $D/val.jsonl --apr runs/c4-apr-$TAG/final --sosp runs/c4-sosp-$TAG/final --max-depth 2 \
    --limit "$LIMIT" --concurrency 8 -o runs/c4-eval-$TAG --cpu-threads 2
