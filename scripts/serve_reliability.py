"""Replay what could hurt ``apr serve`` against a live server process and print a table.

Starts ``apr serve`` on 127.0.0.1 (the bundled model by default), then, each part bounded in
count and time:
  1. the bad-input matrix: every request must get a 4xx (never a 5xx, never a hang);
  2. each poison request beside innocent completions and a solve: the innocents must answer
     200 with the text they get alone (greedy), the solve must verify as it does alone;
  3. a 10 MB body: refused fast, ``/health`` answering meanwhile, the server's RSS unchanged;
  4. load: many concurrent ``openai`` client requests plus solves, counting errors and lost replies;
  5. disconnects: clients that give up early; their sequences must be freed.

    python scripts/serve_reliability.py                 # bundled model, 500 requests, 100 disconnects
    python scripts/serve_reliability.py --requests 100 --disconnects 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve import free_port, start_server  # noqa: E402
from tests.serve.test_isolation import INNOCENT, POISON  # noqa: E402

from apr.grammar import apr_prompt  # noqa: E402
from apr.serve.loading import DEFAULT_MODEL  # noqa: E402
from apr.runtime.cpu import cpu_model

JSON = {"content-type": "application/json"}
MODEL_NAME = "bench"  # what benchmarks.serve.start_server serves the model as
SOLVE = {"nums": [22, 26, 31, 53], "target": 27}
# Raw bodies and routes beyond the poison list: malformed, mistyped, missing, out of range.
BAD = [
    ("/v1/completions", b'{"prompt": "x", '), ("/v1/completions", b"[1, 2]"), ("/v1/completions", b"null"),
    ("/v1/completions", b'{"prompt": ["a", "b"]}'), ("/v1/completions", b'{"prompt": 5}'),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 0}'), ("/v1/completions", b'{"prompt": "x", "max_tokens": -3}'),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": "many"}'), ("/v1/completions", b'{"prompt": "x", "top_p": 0}'),
    ("/v1/completions", b'{"prompt": "x", "temperature": 1e309}'), ("/v1/completions", b'{"prompt": "x", "temperature": NaN}'),
    ("/v1/completions", b'{"prompt": "x", "top_k": -7}'), ("/v1/completions", b'{"prompt": "x", "n": 3}'),
    ("/v1/completions", b'{"prompt": "x", "stream": true}'), ("/v1/completions", b'{"prompt": "x", "logprobs": 5}'),
    ("/v1/completions", b'{"prompt": "x", "model": "gpt-4"}'), ("/v1/completions", b'{"prompt": "x", "stop": 7}'),
    ("/v1/completions", b'{"prompt": "x", "seed": 1.5}'), ("/v1/completions", b"\xff\xfe"),
    ("/v1/apr/solve", b'{"nums": [3, 4], "target": 1000}'), ("/v1/apr/solve", b'{"nums": [3, "4"], "target": 20}'),
    ("/v1/apr/solve", b'{"nums": [3], "target": 20}'), ("/v1/apr/solve", b'{"nums": [1, 2, 3, 4, 5, 6, 7], "target": 20}'),
    ("/v1/apr/solve", json.dumps({**SOLVE, "limits": {"max_threads": 10**9}}).encode()),
    ("/v1/apr/solve", json.dumps({**SOLVE, "limits": {"max_total_tokens": 10**12}}).encode()),
    ("/v1/apr/solve", json.dumps({**SOLVE, "limits": {"timeout_s": -1}}).encode()),
    ("/v1/apr/solve", json.dumps({**SOLVE, "seed": 2**64}).encode()),
    ("/v1/apr/solve", json.dumps({**SOLVE, "temperature": 5}).encode()),
    ("/v1/apr/solve", json.dumps({**SOLVE, "colour": "red"}).encode()),
    ("/v1/nothing", b"{}"),
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bad_input(base: str) -> tuple[int, int, int]:
    """(cases, answered as expected, 5xx) over the raw matrix (all 4xx) and the poison list sent alone."""
    cases = [(route, body, None) for route, body in BAD]
    cases += [("/v1/completions", json.dumps(p).encode(), status) for p, status in POISON]
    statuses = [(httpx.post(base + route, content=body, headers=JSON, timeout=120).status_code, want)
                for route, body, want in cases]
    expected = sum(s == want if want is not None else 400 <= s < 500 for s, want in statuses)
    return len(statuses), expected, sum(s >= 500 for s, _ in statuses)


async def poison_beside_innocents(base: str) -> tuple[int, int, int]:
    """(poison cases, innocent replies, cross-request failures)."""
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        alone = [(await client.post("/v1/completions", json=b)).json()["choices"][0]["text"] for b in INNOCENT]
        solved_alone = (await client.post("/v1/apr/solve", json=SOLVE)).json()["verified"]
        replies = failures = 0
        for poison, _ in POISON:
            innocent = [asyncio.ensure_future(client.post("/v1/completions", json=b)) for b in INNOCENT]
            solve = asyncio.ensure_future(client.post("/v1/apr/solve", json=SOLVE))
            await asyncio.sleep(0.05)
            await client.post("/v1/completions", content=json.dumps(poison), headers=JSON)
            for r, text in zip(await asyncio.gather(*innocent), alone):
                replies += 1
                failures += r.status_code != 200 or r.json()["choices"][0]["text"] != text
            s = await solve
            replies += 1
            failures += s.status_code != 200 or s.json()["verified"] != solved_alone
        return len(POISON), replies, failures


def huge_body(base: str, pid: int) -> tuple[float, float, float, float]:
    """(seconds to the 413, worst /health latency meanwhile, RSS before, RSS after), MiB for RSS."""
    body = json.dumps({"prompt": "x" * 10_000_000}).encode()
    before = rss_mib(pid)
    result: dict[str, float] = {}

    def upload() -> None:
        t0 = time.perf_counter()
        status = httpx.post(base + "/v1/completions", content=body, headers=JSON, timeout=60).status_code
        result["seconds"] = time.perf_counter() - t0 if status == 413 else float("inf")

    worst = 0.0
    with httpx.Client(base_url=base, timeout=10) as client:
        client.get("/health")
        thread = threading.Thread(target=upload)
        thread.start()
        while thread.is_alive():
            t0 = time.perf_counter()
            client.get("/health")
            worst = max(worst, time.perf_counter() - t0)
        thread.join()
    return result["seconds"], worst, before, rss_mib(pid)


async def load(base: str, n_requests: int, n_solves: int) -> tuple[int, int, int]:
    """(requests sent, error replies, requests with no reply) for completions and solves all at once."""
    async with AsyncOpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=600) as api, \
            httpx.AsyncClient(base_url=base, timeout=600) as client:
        completions = [api.completions.create(model=MODEL_NAME, prompt=apr_prompt(10 + i % 90, [i % 97 + 1, 7, 13, 2]),
                                              max_tokens=16, temperature=0) for i in range(n_requests)]
        solves = [client.post("/v1/apr/solve", json=SOLVE) for _ in range(n_solves)]
        results = await asyncio.gather(*completions, *solves, return_exceptions=True)
    lost = sum(isinstance(r, Exception) and not isinstance(r, openai.APIStatusError) for r in results)  # no reply
    errors = sum(isinstance(r, openai.APIStatusError) or isinstance(r, httpx.Response) and r.status_code != 200
                 for r in results)
    return len(results), errors, lost


def disconnects(base: str, n: int) -> tuple[int, float, bool]:
    """(clients that gave up, seconds until /health shows none running, engine idle then)."""
    async def give_up() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=0.2) as client:
            await asyncio.gather(*(client.post("/v1/completions", json={"prompt": "x", "temperature": 0})
                                   for _ in range(n)), return_exceptions=True)

    asyncio.run(give_up())
    t0 = time.perf_counter()
    while (health := httpx.get(base + "/health").json())["requests"]["running"] and time.perf_counter() - t0 < 30:
        time.sleep(0.02)
    return n, time.perf_counter() - t0, not health["engine_busy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--requests", type=int, default=500, help="concurrent completions in the load part")
    ap.add_argument("--solves", type=int, default=20, help="concurrent solves in the load part")
    ap.add_argument("--disconnects", type=int, default=100)
    ap.add_argument("--cpu-threads", type=int, default=1, help="passed to apr serve")
    args = ap.parse_args()

    port = free_port()
    server = start_server(args.model, port, 32, args.cpu_threads)
    base = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str, str, bool]] = []
    try:
        t = time.perf_counter()
        cases, expected, server_errors = bad_input(base)
        rows.append(("bad-input matrix", f"{cases} cases: {expected} answered as expected, {server_errors} 5xx",
                     "0 5xx", server_errors == 0 and expected == cases))
        n_poison, replies, crossed = asyncio.run(poison_beside_innocents(base))
        rows.append(("poison beside innocents", f"{n_poison} poisons, {replies} innocent replies, {crossed} hurt",
                     "0 hurt", crossed == 0))
        seconds, worst, before, after = huge_body(base, server.pid)
        rows.append(("10 MB body", f"413 in {seconds:.3f} s, /health worst {worst * 1000:.0f} ms, "
                     f"RSS {before:.0f} -> {after:.0f} MiB", "< 1 s, < 100 ms, +< 50 MiB",
                     seconds < 1 and worst < 0.1 and after - before < 50))
        sent, errors, lost = asyncio.run(load(base, args.requests, args.solves))
        rows.append(("load", f"{sent} at once ({args.requests} completions + {args.solves} solves): "
                     f"{errors} errors, {lost} lost", "0 errors, 0 lost", errors == 0 and lost == 0))
        n, freed_s, idle = disconnects(base, args.disconnects)
        rows.append(("disconnects", f"{n} clients gave up at 0.2 s: freed in {freed_s:.2f} s, engine idle {idle}",
                     "freed < 0.5 s", freed_s < 0.5 and idle))
        total = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(timeout=30)

    cpu = cpu_model()
    print(f"apr serve reliability · {args.model} · {cpu} · {os.cpu_count()} CPUs · server cpu threads "
          f"{args.cpu_threads} · {total:.0f} s")
    width = max(len(r[1]) for r in rows)
    print(f"{'part':<24} {'measured':<{width}}  {'target':<26} ok")
    for part, measured, target, ok in rows:
        print(f"{part:<24} {measured:<{width}}  {target:<26} {'yes' if ok else 'NO'}")
    sys.exit(0 if all(r[3] for r in rows) else 1)


if __name__ == "__main__":
    main()
