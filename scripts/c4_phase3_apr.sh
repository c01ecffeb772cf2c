#!/usr/bin/env bash
# Issue 14, APR only: the lever the 3-number recipe used against answers lost at the join. From the
# phase-2 APR model, STEPS more steps on every example plus a second copy of each root's post-join
# segment, loss on generated tokens only; then greedy accuracy on LIMIT validation problems.
#   STEPS=400 LIMIT=200 scripts/c4_phase3_apr.sh                          (after the phase-2 pair of scripts/c4_pair.sh)
#   TAG=p5-s300 FROM=p4-s900 STEPS=300 LIMIT=100 scripts/c4_phase3_apr.sh  (after the phase-4 pair)
set -euo pipefail
STEPS=${STEPS:-400}
LIMIT=${LIMIT:-200}
D=runs/c4
TAG=${TAG:-p3-s${STEPS}}
FROM=${FROM:-p2-s700}  # the TAG of the APR model to start from
export OMP_NUM_THREADS=2
APR_N=4000 SOSP_N=16000 scripts/c4_data.sh
[ -f $D/apr4000_root_last_sft.jsonl ] || apr data sft -t $D/apr4000.jsonl -o $D/apr4000_root_last_sft.jsonl --segments root-last
apr train sft -d $D/apr4000_sft.jsonl -d $D/apr4000_root_last_sft.jsonl -o runs/c4-apr-$TAG --init-from runs/c4-apr-$FROM/final \
    --context-length 1024 --truncate --tokens-per-batch 8192 --lr 5e-4 --warmup-steps 20 --max-steps "$STEPS" \
    --loss-on completion --val-fraction 0.02 --eval-every 500 --eval-tokens 20000 --save-every 200 --resume --no-progress
apr eval -p $D/val.jsonl --apr runs/c4-apr-$TAG/final --max-depth 2 --limit "$LIMIT" --concurrency 8 \
    -o runs/c4-eval-$TAG --cpu-threads 2
