#!/usr/bin/env bash
# Issue 14: train an APR and a SoS+ model side by side (one torch thread each) with the same schedule and
# the same STEPS of 8,192-token batches at a 1,024-token context, then evaluate both greedily on LIMIT
# validation problems (the runtime allowing depth-2 spawns). Every step resumes after a kill.
# The pilots of docs/training.md, in order:
#   TAG=s750 STEPS=750 LR=2e-3 WARMUP=50 LIMIT=60 scripts/c4_pair.sh                         # from scratch
#   TAG=cur-s750 STEPS=750 LR=1e-3 WARMUP=20 FROM=models scripts/c4_pair.sh                  # curriculum
#   TAG=p2-s700 STEPS=700 LR=5e-4 WARMUP=20 FROM=cur-s750 APR_N=4000 SOSP_N=16000 LIMIT=200 scripts/c4_pair.sh
#   TAG=d1-cur-s750 STEPS=750 LR=1e-3 WARMUP=20 FROM=models TOKENIZER=runs/tok-digits1 CONTEXT=1536 scripts/c4_pair.sh
#   TAG=p4-s900 STEPS=900 LR=3e-4 WARMUP=20 FROM=p2-s700 APR_N=4000 SOSP_N=16000 scripts/c4_pair.sh
# The narrower range, 4 numbers in 1..30 with targets 10..60 (D, MAX_NUMBER, MAX_TARGET reach scripts/c4_data.sh):
#   D=runs/c4s MAX_NUMBER=30 MAX_TARGET=60 TAG=cur-s1000 STEPS=1000 LR=1e-3 WARMUP=20 FROM=models scripts/c4_pair.sh
#   D=runs/c4s MAX_NUMBER=30 MAX_TARGET=60 TAG=p2-s400 STEPS=400 LR=5e-4 WARMUP=20 FROM=cur-s1000 PHASE2=1 scripts/c4_pair.sh
# PHASE2=1 is the 3-number recipe's second phase: loss on generated tokens only, and APR also trains on a second
# copy of each root's post-join segment (where the 3-number models lost answers their children had found).
# (TOKENIZER: single-digit numbers, `python scripts/build_tokenizer.py --out runs/tok-digits1 --digits 1`; the
# bundled models' ids are the same, so they initialise it; the checkpoints save it and every command loads it.)
set -euo pipefail
STEPS=${STEPS:-750} LR=${LR:-2e-3} WARMUP=${WARMUP:-50} LIMIT=${LIMIT:-100}
APR_N=${APR_N:-2000} SOSP_N=${SOSP_N:-8000}
TOKENIZER=${TOKENIZER:-} CONTEXT=${CONTEXT:-1024}
PHASE2=${PHASE2:-0}
FROM=${FROM:-}  # empty: from scratch; "models": the bundled 3-number models; else the TAG of an earlier pair
TAG=${TAG:?name this pair, e.g. TAG=s750}
D=${D:-runs/c4}  # data folder; the runs are named after it: runs/c4-apr-TAG, runs/c4-sosp-TAG
APR_N=$APR_N SOSP_N=$SOSP_N scripts/c4_data.sh
phase2=()
if [ "$PHASE2" = 1 ]; then
  [ -f $D/apr${APR_N}_root_last_sft.jsonl ] || apr data sft -t $D/apr$APR_N.jsonl -o $D/apr${APR_N}_root_last_sft.jsonl --segments root-last
  phase2=(--loss-on completion)
fi
export OMP_NUM_THREADS=1
for f in apr sosp; do
  data=$D/$([ $f = apr ] && echo apr$APR_N || echo sosp$SOSP_N)_sft.jsonl
  case "$FROM" in
    "") init=(--preset cpu) ;;
    models) init=(--init-from models/$f-cpu) ;;
    *) init=(--init-from $D-$f-$FROM/final) ;;
  esac
  [ -n "$TOKENIZER" ] && init+=(--tokenizer "$TOKENIZER")
  extra=("${phase2[@]}")
  [ "$PHASE2" = 1 ] && [ $f = apr ] && extra+=(-d $D/apr${APR_N}_root_last_sft.jsonl)
  apr train sft -d "$data" "${extra[@]}" -o $D-$f-$TAG "${init[@]}" --context-length "$CONTEXT" --truncate \
      --tokens-per-batch 8192 --lr "$LR" --warmup-steps "$WARMUP" --max-steps "$STEPS" --val-fraction 0.02 \
      --eval-every 250 --eval-tokens 20000 --save-every 250 --resume --no-progress &
done
wait
apr eval -p $D/val.jsonl --apr $D-apr-$TAG/final --sosp $D-sosp-$TAG/final --max-depth 2 \
    --limit "$LIMIT" --concurrency 8 -o $D-eval-$TAG --cpu-threads 2
