#!/usr/bin/env bash
# The bundled models' figures and report (docs/results): the first 100 held-out 3-number problems, greedy,
# APR unconditioned and with at most 1, 2 and 4 children run per spawn, and SoS+. Options given to this
# script override these (the last of a repeated option wins): `scripts/paper_figures.sh --limit 200`.
set -euo pipefail
exec apr eval --problems data/c3/test.jsonl --apr models/apr-cpu --sosp models/sosp-cpu --out docs/results \
    --limit 100 --temperatures 0 --max-children 1,2,4 --sosp-samples 1 --concurrency 16 --seed 0 "$@"
