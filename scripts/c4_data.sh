#!/usr/bin/env bash
# Issue 14's data: 4-number problems of the paper's distribution, and demonstrations for the first
# APR_N (APR: depth-2 spawning at every expansion, beams 6, so every thread fits 1,024 tokens) and
# SOSP_N (SoS+: the paper's beams U{1..5}) training problems, with their SFT rows. Resumes after a kill.
#   APR_N=2000 SOSP_N=8000 scripts/c4_data.sh    -> runs/c4/apr2000_sft.jsonl, runs/c4/sosp8000_sft.jsonl
# A narrower range (numbers 1..MAX_NUMBER, targets 10..MAX_TARGET) goes to its own folder D:
#   D=runs/c4s MAX_NUMBER=30 MAX_TARGET=60 scripts/c4_data.sh   (the bundled 3-number models' range)
set -euo pipefail
APR_N=${APR_N:-2000}
SOSP_N=${SOSP_N:-8000}
MAX_NUMBER=${MAX_NUMBER:-99} MAX_TARGET=${MAX_TARGET:-100}
D=${D:-runs/c4}
apr data problems -o $D --train 20000 --val 200 --test 1200 --max-number "$MAX_NUMBER" --max-target "$MAX_TARGET" \
    --seed 0 --workers 1
[ -f $D/apr$APR_N.jsonl ] || apr data traces -p $D/train.jsonl -o $D/apr$APR_N.jsonl -f apr --min-beam 6 --max-beam 6 --max-sub-beam 6 \
    --max-depth 2 --p-spawn 1.0 --order canonical --limit "$APR_N" --workers 1 &
[ -f $D/sosp$SOSP_N.jsonl ] || apr data traces -p $D/train.jsonl -o $D/sosp$SOSP_N.jsonl -f sosp --max-beam 5 --order canonical \
    --limit "$SOSP_N" --workers 1 &
wait
for f in apr$APR_N sosp$SOSP_N; do
  [ -f $D/${f}_sft.jsonl ] || apr data sft -t $D/$f.jsonl -o $D/${f}_sft.jsonl
done
