#!/usr/bin/env bash
# Issue 14: the curriculum pilot's models (scripts/c4_pilot_curriculum.sh) trained further, side by side
# for the same STEPS of 8,192-token batches, on twice the problems (APR 4,000, SoS+ 16,000), then greedy
# accuracy on LIMIT validation problems. Every step resumes after a kill.
#   STEPS=700 LIMIT=200 scripts/c4_phase2.sh
set -euo pipefail
STEPS=${STEPS:-700}
LIMIT=${LIMIT:-200}
FROM=${FROM:-cur-s750}
D=runs/c4
TAG=${TAG:-p2-s${STEPS}}
export OMP_NUM_THREADS=1
APR_DATA="-f apr --min-beam 6 --max-beam 6 --max-sub-beam 6 --max-depth 2 --p-spawn 1.0 --order canonical"
apr data traces -p $D/train.jsonl -o $D/apr4k.jsonl $APR_DATA --limit 4000 --workers 1 &
apr data traces -p $D/train.jsonl -o $D/sosp16k.jsonl -f sosp --max-beam 5 --order canonical --limit 16000 --workers 1 &
wait
for f in apr4k sosp16k; do
  [ -f $D/${f}_sft.jsonl ] || apr data sft -t $D/$f.jsonl -o $D/${f}_sft.jsonl
done
for f in apr sosp; do
  data=$D/$([ $f = apr ] && echo apr4k || echo sosp16k)_sft.jsonl
  apr train sft -d $data -o runs/c4-$f-$TAG --init-from runs/c4-$f-$FROM/final --context-length 1024 --truncate \
      --tokens-per-batch 8192 --lr 5e-4 --warmup-steps 20 --max-steps "$STEPS" --val-fraction 0.02 \
      --eval-every 500 --eval-tokens 20000 --save-every 250 --resume --no-progress &
done
wait
apr eval -p $D/val.jsonl --apr runs/c4-apr-$TAG/final --sosp runs/c4-sosp-$TAG/final --max-depth 2 \
    --limit "$LIMIT" --concurrency 8 -o runs/c4-eval-$TAG --cpu-threads 2
