#!/usr/bin/env bash
# Bundle the CPU recipe's two models (scripts/cpu_recipe.sh) into models/ with their model cards.
# EVAL=path/to/summary.json adds the measured accuracy (from `apr eval --preset paper-figures`).
set -euo pipefail
EVAL_ARGS=()
[ -n "${EVAL:-}" ] && EVAL_ARGS=(--eval "$EVAL")
PROBLEMS='apr data problems -o c3b --train 24000 --val 100 --test 200 --numbers 3 --min-number 1 --max-number 30 --min-target 10 --max-target 60 --seed 0   # held-out split bundled as data/c3'
SIDE="Each phase ran with OMP_NUM_THREADS=1 side by side with the same phase of the other model of the pair (apr-cpu / sosp-cpu): phase 1 for the same 75 minutes, batch and schedule (15.2M vs 15.4M tokens), phase 2 for the same 385 steps of 8,192 tokens. The recipe is scripts/cpu_recipe.sh and docs/training.md."
INIT="Phase 2 started from phase 1's final checkpoint (the recorded \`--init-from\` under models/ held that checkpoint then; from scratch, pass phase 1's \`final/\` folder)."
python scripts/bundle_model.py --run runs/apr3c --run runs/p2/apr_mix --out models/apr-cpu --format apr "${EVAL_ARGS[@]}" \
  --data-command "cd runs" --data-command "$PROBLEMS" \
  --data-command "apr data traces -p c3b/train.jsonl -o c3b/apr_c.jsonl -f apr --min-beam 12 --max-beam 12 --max-sub-beam 15 --order canonical" \
  --data-command "apr data traces -p c3b/val.jsonl -o c3b/apr_c_val.jsonl -f apr --min-beam 12 --max-beam 12 --max-sub-beam 15 --order canonical" \
  --data-command "apr data sft -t c3b/apr_c.jsonl -o c3b/apr_c_sft.jsonl && apr data sft -t c3b/apr_c_val.jsonl -o c3b/apr_c_val_sft.jsonl" \
  --data-command "apr data sft -t c3b/apr_c.jsonl -o p2/apr_final_sft.jsonl --segments root-last   # phase 2: each root's answer after its join, once more" \
  --note "$SIDE" --note "$INIT" \
  --note "Phase 2 trains on every example again plus one more copy of each root's post-join segment, with the loss on generated tokens only (\`--loss-on completion\`): most of phase 1's failures (54 of 61 on the test problems) were answers the root lost after a child had found them (docs/training.md)."
python scripts/bundle_model.py --run runs/sosp3c --run runs/p2/sosp_ext --out models/sosp-cpu --format sosp "${EVAL_ARGS[@]}" \
  --data-command "cd runs" --data-command "$PROBLEMS" \
  --data-command "apr data traces -p c3b/train.jsonl -o c3b/sosp_c.jsonl -f sosp --max-beam 5 --order canonical" \
  --data-command "apr data traces -p c3b/val.jsonl -o c3b/sosp_c_val.jsonl -f sosp --max-beam 5 --order canonical" \
  --data-command "apr data sft -t c3b/sosp_c.jsonl -o c3b/sosp_c_sft.jsonl && apr data sft -t c3b/sosp_c_val.jsonl -o c3b/sosp_c_val_sft.jsonl" \
  --note "$SIDE" --note "$INIT" \
  --note "Phase 2 continues on the same data with the loss on generated tokens only (\`--loss-on completion\`; a SoS+ prompt is one short state line)."
