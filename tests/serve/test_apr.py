"""APR over ``apr serve``: whole-tree solves, and the client-side orchestrator against the server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apr.runtime.backend import SamplingParams
from apr.runtime.openai_backend import OpenAIBackend
from apr.countdown.verifier import verify_countdown
from apr.runtime.orchestrator import SolveConfig, asolve
from apr.countdown.task import check_problem
from apr.serve.loading import load_backend
from apr.threads import Thread
from tests.serve.models import CONTEXT, NAME, PROBLEM, demonstration

CONFIG = SolveConfig(sampling=SamplingParams(temperature=0.0), verify=verify_countdown)


def written(root: Thread) -> list[tuple]:
    """What each thread saw and wrote, in tree order; no timings or token counts."""
    return [(t.id, t.prompt, [(s.kind, s.text) for s in t.spans], t.finish_reason, t.events) for t in root.walk()]


def test_solve_returns_the_verified_tree(served_apr):
    nums, target = PROBLEM
    r = httpx.post(served_apr.server.url + "/apr/solve", json={"nums": nums, "target": target}, timeout=60)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["verified"] is True and result["failure"] is None and result["model"] == NAME
    assert result["expression"].endswith(f"= {target}")
    tree = Thread.from_dict(result["tree"])
    assert written(tree) == [(t.id, t.prompt, [(s.kind, s.text) for s in t.spans], "eos", [])
                             for t in demonstration().walk()]
    metrics = result["metrics"]
    assert metrics["n_threads"] == 3 and metrics["n_spawns"] == 1
    assert metrics["sequential_tokens"] < metrics["generated_tokens"]
    assert metrics["cached_tokens"] > 0  # the root continued from its own cache after the join


def test_openai_backend_against_the_server_writes_the_embedded_tree(served_apr):
    """The client-side orchestrator over HTTP and the in-process engine write the same tree (greedy)."""
    prompt = check_problem(*PROBLEM).prompt()
    direct = asyncio.run(asolve(prompt, load_backend(served_apr.path, max_slots=8), CONFIG))
    tok = served_apr.backend.codec

    async def over_http() -> Thread:
        backend = OpenAIBackend(served_apr.server.url, NAME, lambda t: tok.encode(t, bos=False), CONTEXT, max_retries=0)
        try:
            return await asolve(prompt, backend, CONFIG)
        finally:
            await backend.aclose()

    remote = asyncio.run(over_http())
    assert len(direct.children) == 2 and direct.meta["verified"]
    assert written(remote) == written(direct)
    # The parent's continuation re-sent its whole text; the server's prefix cache served the old part.
    assert remote.meta["calls"][1]["cached_tokens"] > remote.meta["calls"][1]["prompt_tokens"] // 2


@pytest.mark.parametrize("body,message", [
    ({"nums": [3, 23], "target": 36, "limits": {"max_depth": -1}}, "max_depth must be >= 0"),
    ({"nums": [3, 23], "target": 36, "limits": {"max_dpth": 2}}, "max_dpth"),
    ({"nums": [3, "23"], "target": 36}, "valid integer"),
    ({"nums": [3, 2.5], "target": 36}, "valid integer"),
    ({"nums": [3], "target": 36}, "at least 2 numbers"),
    ({"nums": [3, -4], "target": 36}, "non-negative"),
    ({"nums": [3, 4], "target": 1000}, "target must be in 10..100"),
    ({"nums": [3, 400], "target": 36}, "numbers must be in 1..99"),
    ({"target": 36}, "nums: Field required"),
    ({"nums": [3, 23, 11, 5], "target": 36}, "this server's model was trained on 3 numbers in 3..23, targets 36..36"),
])
def test_bad_problems_get_400(served_apr, body, message):
    r = httpx.post(served_apr.server.url + "/apr/solve", json=body)
    assert r.status_code == 400
    assert message in r.json()["error"]["message"]
