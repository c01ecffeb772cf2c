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
# (TOKENIZER: single-digit numbers, `python scripts/build_tokenizer.py --out runs/tok-digits1 --digits 1`; the
# bundled models' ids are the same, so they initialise it; the checkpoints save it and every command loads it.)
set -euo pipefail
STEPS=${STEPS:-750} LR=${LR:-2e-3} WARMUP=${WARMUP:-50} LIMIT=${LIMIT:-100}
APR_N=${APR_N:-2000} SOSP_N=${SOSP_N:-8000}
TOKENIZER=${TOKENIZER:-} CONTEXT=${CONTEXT:-1024}
FROM=${FROM:-}  # empty: from scratch; "models": the bundled 3-number models; else the TAG of an earlier pair
TAG=${TAG:?name this pair, e.g. TAG=s750}
D=runs/c4
APR_N=$APR_N SOSP_N=$SOSP_N scripts/c4_data.sh
export OMP_NUM_THREADS=1
for f in apr sosp; do
  data=$D/$([ $f = apr ] && echo apr$APR_N || echo sosp$SOSP_N)_sft.jsonl
  case "$FROM" in
    "") init=(--preset cpu) ;;
    models) init=(--init-from models/$f-cpu) ;;
    *) init=(--init-from runs/c4-$f-$FROM/final) ;;
  esac
  [ -n "$TOKENIZER" ] && init+=(--tokenizer "$TOKENIZER")
  apr train sft -d "$data" -o runs/c4-$f-$TAG "${init[@]}" --context-length "$CONTEXT" --truncate \
      --tokens-per-batch 8192 --lr "$LR" --warmup-steps "$WARMUP" --max-steps "$STEPS" --val-fraction 0.02 \
      --eval-every 250 --eval-tokens 20000 --save-every 250 --resume --no-progress &
done
wait
apr eval -p $D/val.jsonl --apr runs/c4-apr-$TAG/final --sosp runs/c4-sosp-$TAG/final --max-depth 2 \
    --limit "$LIMIT" --concurrency 8 -o runs/c4-eval-$TAG --cpu-threads 2
