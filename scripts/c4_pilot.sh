#!/usr/bin/env bash
# Issue 14 pilot: 4-number Countdown (the paper's distribution: 1..99, targets 10..100) at a 1024-token
# context. APR: depth-2 spawning at every expansion (p_spawn 1), beams 6, so every demonstration thread
# fits 1024 tokens; SoS+: the paper's beams U{1..5}, 35% of its traces over 1024 (docs/training.md).
# Both train side by side (one torch thread each) for the same STEPS of 8,192-token batches (the same
# training tokens), then greedy accuracy on LIMIT validation problems. Every step resumes after a kill.
#   STEPS=750 LIMIT=60 scripts/c4_pilot.sh
set -euo pipefail
STEPS=${STEPS:-750}
LIMIT=${LIMIT:-60}
D=runs/c4
TAG=${TAG:-s${STEPS}}
export OMP_NUM_THREADS=1
apr data problems -o $D --train 20000 --val 200 --test 1200 --seed 0 --workers 1
APR_DATA="-f apr --min-beam 6 --max-beam 6 --max-sub-beam 6 --max-depth 2 --p-spawn 1.0 --order canonical"
apr data traces -p $D/train.jsonl -o $D/apr.jsonl $APR_DATA --limit 2000 --workers 1 &
apr data traces -p $D/train.jsonl -o $D/sosp.jsonl -f sosp --max-beam 5 --order canonical --limit 8000 --workers 1 &
wait
for f in apr sosp; do
  [ -f $D/${f}_sft.jsonl ] || apr data sft -t $D/$f.jsonl -o $D/${f}_sft.jsonl
done
for f in apr sosp; do
  apr train sft -d $D/${f}_sft.jsonl -o runs/c4-$f-$TAG --preset cpu --context-length 1024 --truncate \
      --tokens-per-batch 8192 --lr 2e-3 --warmup-steps 50 --max-steps "$STEPS" --val-fraction 0.02 \
      --eval-every 250 --eval-tokens 20000 --save-every 250 --resume --no-progress &
done
wait
apr eval -p $D/val.jsonl --apr runs/c4-apr-$TAG/final --sosp runs/c4-sosp-$TAG/final --max-depth 2 \
    --limit "$LIMIT" --concurrency 8 -o runs/c4-eval-$TAG --cpu-threads 2
