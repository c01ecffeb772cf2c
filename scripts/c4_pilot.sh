#!/usr/bin/env bash
# Issue 14 pilot: 4-number Countdown (the paper's distribution: 1..99, targets 10..100) at a 1024-token
# context, APR (depth-2 spawning, beams 4, so 97% of demonstrations have every thread under 1024 tokens)
# vs SoS+ (the paper's beams U{1..5}: 35% of its traces are over 1024). Same schedule, token budget and
# context; greedy accuracy on 100 validation problems. One torch thread per run; rerun after a kill.
#   MINUTES=15 N=3000 scripts/c4_pilot.sh
set -euo pipefail
MINUTES=${MINUTES:-15}
N=${N:-3000}
D=runs/c4
TAG=${TAG:-m${MINUTES}}
export OMP_NUM_THREADS=1
apr data problems -o $D --train 20000 --val 200 --test 1200 --seed 0 --workers 1
apr data traces -p $D/train.jsonl -o $D/apr_b4d2.jsonl -f apr --min-beam 4 --max-beam 4 --max-sub-beam 4 \
    --max-depth 2 --order canonical --limit "$N" --workers 1
apr data traces -p $D/train.jsonl -o $D/sosp.jsonl -f sosp --max-beam 5 --order canonical --limit "$N" --workers 1
for f in apr_b4d2 sosp; do
  [ -f $D/${f}_sft.jsonl ] || apr data sft -t $D/$f.jsonl -o $D/${f}_sft.jsonl
done
for f in apr_b4d2 sosp; do
  apr train sft -d $D/${f}_sft.jsonl -o runs/c4-$f-$TAG --preset cpu --context-length 1024 --truncate \
      --tokens-per-batch 8192 --lr 2e-3 --warmup-steps 50 --max-minutes "$MINUTES" --val-fraction 0.02 \
      --eval-every 200 --eval-tokens 20000 --save-every 100 --resume --no-progress
done
apr eval -p $D/val.jsonl --apr runs/c4-apr_b4d2-$TAG/final --sosp runs/c4-sosp-$TAG/final --limit 100 \
    -o runs/c4-eval-$TAG --threads 1
