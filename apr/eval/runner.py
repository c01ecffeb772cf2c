"""Run one setting over the problems, keeping a record per problem as soon as it finishes.

Records are appended to ``samples/<setting>.jsonl.partial`` (flushed and fsynced), so a kill loses
only the problems in flight and a re-run reads the rest back. When every problem is done they are
written in problem order to ``samples/<setting>.jsonl`` atomically and the partial file goes.
``samples/<setting>.json`` says what produced them: a re-run with another model, problems file or
setting is refused instead of being mixed in.

Concurrency: ``concurrency`` problems are in flight at once and all samples of a problem run
together, so with the default of 1 a sample's latency is its wall clock with only its own
problem's threads (APR children, or the other samples) sharing the batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apr.countdown.task import Problem
from apr.data.io import Row, check_fingerprint, iter_jsonl, write_rows
from apr.eval.load import Model
from apr.eval.metrics import score_tree
from apr.eval.settings import Setting
from apr.runtime.orchestrator import asolve
from apr.threads import Thread


class RecordFile:
    """The per-problem records of one setting, resumable."""

    def __init__(self, out: Path, name: str):
        self.path = Path(out) / "samples" / f"{name}.jsonl"
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.meta = self.path.with_suffix(".json")

    def open(self, fingerprint: dict[str, Any], fresh: bool = False) -> dict[str, Row]:
        """Check (or record) what produced the records; return the finished ones by problem id."""
        if fresh:
            for p in (self.path, self.partial, self.meta):
                p.unlink(missing_ok=True)
        check_fingerprint(self.meta, fingerprint, self.path)
        rows = list(iter_jsonl(self.path)) if self.path.exists() else []
        return {r["id"]: r for r in rows + self._read_partial()}

    def _read_partial(self) -> list[Row]:
        """Complete lines of the partial file; a line torn by a kill is cut off."""
        if not self.partial.exists():
            return []
        data = self.partial.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with open(self.partial, "r+b") as f:
                f.truncate(len(whole))
        return [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]

    def append(self, row: Row) -> None:
        with open(self.partial, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finish(self, rows: list[Row]) -> None:
        write_rows(self.path, rows)
        self.partial.unlink(missing_ok=True)


def problem_record(problem: Problem, index: int, roots: list[Thread], model: Model, runner_s: float) -> Row:
    """One line of the records file: the problem, every sample's score and thread tree."""
    samples = []
    for k, root in enumerate(roots):
        samples.append({"sample": k, **score_tree(root, problem, model.count).to_dict(), "tree": root.to_dict()})
    return {"id": problem.id, "index": index, "nums": list(problem.nums), "target": problem.target,
            "correct": sum(s["correct"] for s in samples), "runner_s": round(runner_s, 4), "samples": samples}


async def run_setting(setting: Setting, problems: list[Problem], model: Model, store: RecordFile,
                      done: dict[str, Row], *, seed: int, concurrency: int, max_tokens: int | None,
                      progress: bool = True) -> list[Row]:
    """Run the problems not in ``done``; return every problem's record in problem order.

    Sample k of the problem at position i draws its seeds from ``(seed, i * samples + k)``, so a
    resumed run samples exactly what an uninterrupted one would have.
    """
    config = setting.solve_config(seed, max_tokens or model.context_length)
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in done]
    tqdm.write(f"{setting.name}: {len(problems) - len(todo)} of {len(problems)} problems done earlier, "
               f"running {len(todo)}")
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc=setting.name, unit="problem",
               dynamic_ncols=True, disable=None if progress else True)
    last = time.perf_counter()  # runner_s: time since the previous problem finished (sums to the wall clock)

    async def one(i: int, problem: Problem) -> None:
        nonlocal last
        async with gate:
            prompt = setting.prompt(problem)
            roots = await asyncio.gather(*(asolve(prompt, model.backend, config, index=i * setting.samples + k)
                                           for k in range(setting.samples)))
        now = time.perf_counter()
        row = problem_record(problem, i, list(roots), model, now - last)
        last = now
        store.append(row)
        done[problem.id] = row
        bar.update()

    try:
        await asyncio.gather(*(one(i, p) for i, p in todo))
    finally:
        bar.close()
    store.finish(sorted(done.values(), key=lambda r: r["index"]))
    return [done[p.id] for p in problems]
