#!/usr/bin/env bash
# The CPU recipe behind the bundled models (docs/training.md): data, APR and SoS+ SFT side by side on
# a 2-core CPU (one thread each, the same minutes and batch size), evaluation, bundling.
# Every step resumes: rerun the script after a kill. MINUTES=75 by default.
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
for f in apr sosp; do
  OMP_NUM_THREADS=1 apr train sft -d $D/${f}_sft.jsonl --val-data $D/${f}_val_sft.jsonl -o runs/${f}-c3 \
      --context-length 1024 --truncate --tokens-per-batch 8192 --lr 2e-3 --warmup-steps 100 \
      --max-minutes "$MINUTES" --eval-every 300 --eval-tokens 40000 --save-every 300 --resume &
done
wait
