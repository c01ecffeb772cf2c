"""Throughput of ``apr serve`` with many concurrent clients vs one request at a time.

Starts ``apr serve`` in a subprocess on 127.0.0.1, then sends the same requests (APR root prompts
of random Countdown problems, greedy, ``--max-tokens`` each) at several concurrency levels, each
client waiting for its answer before sending the next. Concurrent requests share the server's
engine steps (continuous batching), so completion tokens per second should grow with the number
of clients until the batch stops being almost free.

    python benchmarks/serve.py                     # the bundled model, or a random `cpu`-preset one
    python benchmarks/serve.py --model runs/apr-cpu/final --concurrency 1 4 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import AsyncOpenAI

from apr.grammar import apr_prompt
from apr.runtime.cpu import cpu_model
from apr.serve.loading import DEFAULT_MODEL


def random_checkpoint(directory: Path, preset: str) -> Path:
    """A random-weight checkpoint: the same architecture, hence the same speed, as a trained one."""
    from apr.models.loading import build_model
    from apr.tokenizer import load_tokenizer, save_tokenizer

    tokenizer = load_tokenizer()
    build_model(preset, tokenizer).save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, max_slots: int, cpu_threads: int | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "apr", "serve", "--model", str(model), "--port", str(port),
           "--max-slots", str(max_slots), "--served-model-name", "bench"]
    if cpu_threads:
        cmd += ["--cpu-threads", str(cpu_threads)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"apr serve exited: {server.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("apr serve did not start within 300 s")


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [apr_prompt(rng.randint(10, 100), [rng.randint(1, 99) for _ in range(4)]) for _ in range(n)]


async def run(url: str, work: list[str], concurrency: int, max_tokens: int) -> tuple[float, int]:
    """Send every prompt with ``concurrency`` closed-loop clients; wall seconds and completion tokens."""
    queue = list(reversed(work))
    tokens = 0

    async def client(api: AsyncOpenAI) -> None:
        nonlocal tokens
        while queue:
            r = await api.completions.create(model="bench", prompt=queue.pop(), max_tokens=max_tokens, temperature=0)
            tokens += r.usage.completion_tokens

    async with AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=600) as api:
        start = time.perf_counter()
        await asyncio.gather(*(client(api) for _ in range(concurrency)))
        return time.perf_counter() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help=f"checkpoint; default {DEFAULT_MODEL} or a random --preset model")
    ap.add_argument("--preset", default="cpu", help="architecture of the random model when there is no checkpoint")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--cpu-threads", type=int, default=None, help="passed to apr serve")
    ap.add_argument("--rounds", type=int, default=3,
                    help="every concurrency level once per round, interleaved; the median round counts")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or (DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").is_file()
                               else random_checkpoint(Path(tmp), args.preset))
        label = str(model) if model != Path(tmp) else f"random {args.preset}-preset model"
        port = free_port()
        server = start_server(model, port, max(args.concurrency), args.cpu_threads)
        try:
            url = f"http://127.0.0.1:{port}/v1"
            work = prompts(args.requests, seed=0)
            asyncio.run(run(url, work[:2], 2, 8))  # warm-up
            rounds = [[asyncio.run(run(url, work, c, args.max_tokens)) for c in args.concurrency]
                      for _ in range(args.rounds)]  # interleaved: the machine's drifting speed hits every level
            rows = [(c, statistics.median(r[i][0] for r in rounds), rounds[0][i][1])
                    for i, c in enumerate(args.concurrency)]
        finally:
            server.terminate()
            server.wait(timeout=30)

    base = rows[0][2] / rows[0][1]
    print(f"{cpu_model()} · {label} · {args.requests} requests × ≤{args.max_tokens} tokens · server cpu threads "
          f"{args.cpu_threads or 'default'} · median of {args.rounds} rounds · load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'clients':>8} {'wall s':>8} {'tokens':>7} {'tok/s':>8} {'vs ' + str(rows[0][0]):>6}")
    for c, wall, tokens in rows:
        print(f"{c:>8} {wall:>8.2f} {tokens:>7} {tokens / wall:>8.1f} {tokens / wall / base:>5.1f}x")


if __name__ == "__main__":
    main()
