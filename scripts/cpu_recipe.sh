#!/usr/bin/env bash
# The CPU recipe behind the bundled models (docs/training.md): data, then APR and SoS+ SFT side by side
# on a 2-core CPU (one thread each), in two phases: MINUTES (75) with the same batch size and schedule,
# then 385 more steps each with the loss on generated tokens (APR: plus a second copy of every root's
# post-join segment). Then `EVAL=docs/results/summary.json scripts/bundle_cpu_pair.sh` after
# `apr eval --preset paper-figures`. Every step resumes: rerun the script after a kill.
set -euo pipefail
MINUTES=${MINUTES:-75}
D=runs/c3
apr data problems -o $D --train 24000 --val 100 --test 200 --numbers 3 --min-number 1 --max-number 30 \
    --min-target 10 --max-target 60 --seed 0
for split in train val; do
  sfx=$([ $split = val ] && echo _val || true)
  apr data traces -p $D/$split.jsonl -o $D/apr$sfx.jsonl -f apr --min-beam 12 --max-beam 12 --max-sub-beam 15 \
      --order canonical
  apr data traces -p $D/$split.jsonl -o $D/sosp$sfx.jsonl -f sosp --max-beam 5 --order canonical
  for f in apr sosp; do apr data sft -t $D/$f$sfx.jsonl -o $D/${f}${sfx}_sft.jsonl; done
done
apr data sft -t $D/apr.jsonl -o $D/apr_root_last_sft.jsonl --segments root-last
for f in apr sosp; do
  OMP_NUM_THREADS=1 apr train sft -d $D/${f}_sft.jsonl --val-data $D/${f}_val_sft.jsonl -o runs/${f}-c3 \
      --context-length 1024 --truncate --tokens-per-batch 8192 --lr 2e-3 --warmup-steps 100 \
      --max-minutes "$MINUTES" --eval-every 300 --eval-tokens 40000 --save-every 300 --resume &
done
wait
# Phase 2: the same number of steps for both, from each phase-1 model.
OMP_NUM_THREADS=1 apr train sft --init-from runs/apr-c3/final -d $D/apr_sft.jsonl -d $D/apr_root_last_sft.jsonl \
    --val-data $D/apr_val_sft.jsonl -o runs/apr-c3-p2 --context-length 1024 --truncate --tokens-per-batch 8192 \
    --lr 5e-4 --warmup-steps 20 --max-steps 385 --seed 1 --loss-on completion --eval-every 100 --eval-tokens 40000 --save-every 100 --resume &
OMP_NUM_THREADS=1 apr train sft --init-from runs/sosp-c3/final -d $D/sosp_sft.jsonl \
    --val-data $D/sosp_val_sft.jsonl -o runs/sosp-c3-p2 --context-length 1024 --truncate --tokens-per-batch 8192 \
    --lr 5e-4 --warmup-steps 20 --max-steps 385 --seed 1 --loss-on completion --eval-every 100 --eval-tokens 40000 --save-every 100 --resume &
wait
