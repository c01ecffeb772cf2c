"""The bundled model on llama.cpp's real ``llama-server``: its GGUF tokenizes as ours, and fork-join
trees decoded there are the embedded engine's, through ``apr solve`` and ``apr eval`` too.

Needs the binary that ``scripts/build_llama_server.sh`` builds (``.ci/run`` builds it); skipped,
with that hint, where it has not been built.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apr.cli import _register, app
from apr.countdown.problems import ProblemSpec, draw_candidate, load_problems
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.countdown.verifier import verify_countdown
from apr.models.gguf import export_gguf
from apr.runtime.backend import SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.llamacpp_backend import LlamaCppBackend
from apr.runtime.orchestrator import SolveConfig, asolve_many
from apr.serve.llamacpp import LlamaServer, find_llama_server
from apr.serve.loading import DEFAULT_MODEL
from apr.threads import shape
from apr.tokenizer import build_tokenizer, checkpoint_tokenizer

_register()
BINARY = find_llama_server()
pytestmark = pytest.mark.skipif(BINARY is None, reason="llama-server is not built here: run "
                                "scripts/build_llama_server.sh (about 6 minutes on 2 cores)")
N_PROBLEMS = 20
C3_TEST = Path(__file__).resolve().parents[2] / "data" / "c3" / "test.jsonl"
PARALLEL = 8


@pytest.fixture(scope="module")
def tok():
    return checkpoint_tokenizer(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tok):
    """The bundled default model, exported and served with 8 slots of its own window."""
    gguf = export_gguf(DEFAULT_MODEL, tmp_path_factory.mktemp("gguf") / "model.gguf", tok)
    with LlamaServer(BINARY, gguf, parallel=PARALLEL, slot_context=1024, threads=1) as server:
        yield server


def trace_texts(n_problems: int) -> list[str]:
    """What the runtime sends and reads back: segment prompts, completions (spawn and join blocks
    included) and whole SoS+ traces, for 3- and 4-number problems (3-digit intermediate numbers)."""
    texts = []
    for n in (3, 4):
        for i in range(n_problems):
            p = draw_candidate(ProblemSpec(n_numbers=n), 0, "gguf-test", i)
            rng = random.Random(i)
            beam = rng.randint(1, 6)
            tree = apr_search(list(p.nums), p.target, AprSettings(beam, rng.randint(beam, 8), 0.9), rng)
            texts += [t for s in (seg for th in tree.walk() for seg in th.segments()) for t in (s.prompt, s.completion)]
            texts.append(sosp(list(p.nums), p.target, rng.randint(1, 3), rng))
    return texts


def server_ids(url: str, texts: list[str]) -> list[list[int]]:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as http:
        return [http.post("/tokenize", json={"content": t, "add_special": False}).json()["tokens"] for t in texts]


def test_llama_cpp_tokenizes_every_trace_text_as_we_do(served, tok):
    texts = trace_texts(40)
    assert len(texts) >= 500
    assert any(len(str(n)) == 3 for t in texts for n in map(int, re.findall(r"\d+", t)))
    ours = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert server_ids(served.url, texts) == ours


def test_what_llama_cpp_cannot_tokenize_like_us(served, tok):
    """Documented in apr.models.gguf: no byte fallback (a tab becomes <unk>), everything else exact."""
    [tab] = server_ids(served.url, ["a\tb"])
    assert tab == [tok.convert_tokens_to_ids("a"), tok.unk_token_id, tok.convert_tokens_to_ids("b")]
    assert tok("a\tb", add_special_tokens=False)["input_ids"][1] != tok.unk_token_id


def test_a_single_digit_tokenizer_exports_exactly_too(tmp_path, tok):
    digits = build_tokenizer(digits=1)
    gguf = export_gguf(DEFAULT_MODEL, tmp_path / "d1.gguf", digits)
    texts = trace_texts(10)
    with LlamaServer(BINARY, gguf, parallel=1, slot_context=1024) as server:
        assert server_ids(server.url, texts) == [digits(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_trees_on_llama_server_are_the_embedded_engines(served, tok):
    prompts = [p.prompt("apr") for p in load_problems(C3_TEST, N_PROBLEMS)]
    config = SolveConfig(sampling=SamplingParams(), verify=verify_countdown)

    async def on_server():
        backend = LlamaCppBackend(served.url, TokenCodec(tok), 1024)
        try:
            return await asolve_many(prompts, backend, config)
        finally:
            await backend.aclose()

    remote = asyncio.run(on_server())
    local = EmbeddedBackend.from_checkpoint(DEFAULT_MODEL, max_slots=64)
    embedded = asyncio.run(asolve_many(prompts, local, config))
    assert [shape(t) for t in remote] == [shape(t) for t in embedded]
    # Token counts are the embedded engine's too: the server returns its ids.
    assert [[c["new_tokens"] for t in r.walk() for c in t.meta["calls"]] for r in remote] == \
           [[c["new_tokens"] for t in e.walk() for c in t.meta["calls"]] for e in embedded]
    assert any(t.spawns for t in remote)


def test_apr_solve_and_apr_eval_against_llama_server(served, tmp_path):
    run = CliRunner().invoke(app, ["solve", "42", "16", "7", "22", "--backend-url", served.url,
                                   "--json", str(tmp_path / "remote.json")])
    local = CliRunner().invoke(app, ["solve", "42", "16", "7", "22", "--cpu-threads", "1",
                                     "--json", str(tmp_path / "local.json")])
    assert run.exit_code == local.exit_code == 0, run.output
    remote, embedded = (json.loads((tmp_path / f).read_text()) for f in ("remote.json", "local.json"))
    assert remote["answer"] == embedded["answer"] and remote["metrics"]["total_tokens"] == \
        embedded["metrics"]["total_tokens"]
    assert "llama-server at" in remote["source"]

    common = ["eval", "-p", str(C3_TEST), "--apr", str(DEFAULT_MODEL), "--limit", str(N_PROBLEMS),
              "--concurrency", str(PARALLEL)]
    served_eval = CliRunner().invoke(app, [*common, "--backend-url", served.url, "-o", str(tmp_path / "srv")])
    embedded_eval = CliRunner().invoke(app, [*common, "--cpu-threads", "1", "-o", str(tmp_path / "emb")])
    assert served_eval.exit_code == embedded_eval.exit_code == 0, served_eval.output
    keys = ("accuracy", "total_tokens", "sequential_tokens", "longest_context", "failures", "lost_at_join")
    srv, emb = ({k: v for k, v in json.loads((tmp_path / d / "summary.json").read_text())["settings"]["apr-t0"].items()
                 if k in keys} for d in ("srv", "emb"))
    assert srv == emb and srv["accuracy"] > 0
