"""`apr eval --backend-url` against a loopback OpenAI-compatible server that writes solver traces."""

from __future__ import annotations

import json
import random

from fastapi import FastAPI, Request

from apr.countdown.search import sosp
from apr.grammar import parse_prompt
from tests.eval.conftest import run, write_problems
from tests.loopback import Loopback


def solver_server(tok, bos: int) -> FastAPI:
    """Completes SoS+ prompts with the symbolic solver's trace; counts prompt tokens plus ``bos``."""
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        state = parse_prompt(body["prompt"])
        trace = sosp(state.nums, state.target, 3, random.Random(body["prompt"]))
        text = trace[len(body["prompt"]):]
        n_prompt = len(tok.encode(body["prompt"], add_special_tokens=False)) + bos
        return {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "stop_reason": None}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": 1, "total_tokens": n_prompt + 1}}

    return app


def test_served_model_is_scored_with_our_token_counts(tmp_path, tok):
    problems = write_problems(tmp_path / "test.jsonl")
    out = tmp_path / "results"
    with Loopback(solver_server(tok, bos=1)) as server:
        result = run("--problems", str(problems), "--sosp", "solver", "--backend-url", server.url,
                     "--context-length", "4096", "--out", str(out), "--limit", "3")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "samples" / "sosp-t0.jsonl").read_text().splitlines()]
    assert any(r["correct"] for r in rows)
    for row in rows:
        sample = row["samples"][0]
        text = sample["tree"]["spans"][0]["text"]
        # The server returns no token ids: spans are counted with our tokenizer.
        assert sample["generated_tokens"] == len(tok.encode(text, add_special_tokens=False)) > 0
        assert sample["correct"] == ("Goal Reached" in text)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["backend"] == f"OpenAI-compatible server {server.url}"
    assert summary["settings"]["sosp-t0"]["accuracy"] == sum(r["correct"] for r in rows) / 3


def test_a_server_with_another_tokenizer_is_refused(tmp_path, tok):
    problems = write_problems(tmp_path / "test.jsonl")
    with Loopback(solver_server(tok, bos=7)) as server:
        result = run("--problems", str(problems), "--sosp", "solver", "--backend-url", server.url,
                     "--context-length", "4096", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "tokenizer mismatch" in result.text
