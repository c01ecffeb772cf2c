"""One evaluation end to end: check the inputs, run every setting (resuming), write the outputs.

Outputs in ``config.out``: ``samples/<setting>.jsonl`` (one record per problem with every sample's
score and thread tree), ``summary.json``, ``report.md`` and the four figures as PNGs.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
from typing import Any

import torch

from apr.countdown.task import Problem
from apr.data.io import Row, atomic_write_bytes
from apr.eval.load import (Model, check_range, check_served_tokenizer, file_digest, load_problems, open_embedded,
                           open_served)
from apr.eval.plots import write_plots
from apr.eval.report import render
from apr.eval.runner import RecordFile, run_setting
from apr.eval.settings import EvalConfig
from apr.runtime.llamacpp_backend import LlamaCppBackend
from apr.eval.summary import summarize_setting


def _backend_name(config: EvalConfig, models: dict[str, Model]) -> str:
    backends = [m.backend for m in models.values()]
    if config.backend_url:
        kind = "llama-server" if all(isinstance(b, LlamaCppBackend) for b in backends) else "OpenAI-compatible server"
        return f"{kind} {config.backend_url}"
    devices = ", ".join(sorted({str(b.engine.device) for b in backends}))
    return f"embedded engine ({config.dtype}, max batch {config.max_batch}, {devices})"


def open_model(fmt: str, config: EvalConfig) -> Model:
    ref = config.models[fmt]
    if config.backend_url:
        return open_served(fmt, ref, url=config.backend_url, tokenizer=config.tokenizer,
                           context_length=config.context_length)
    return open_embedded(fmt, ref, tokenizer=config.tokenizer, max_batch=config.max_batch, dtype=config.dtype,
                         device=config.device)


async def run_all(config: EvalConfig, problems: list[Problem], models: dict[str, Model]) -> dict[str, list[Row]]:
    """Every setting in order, each resuming from its own records."""
    digest = file_digest(config.problems)
    rows: dict[str, list[Row]] = {}
    try:
        for model in models.values():
            if model.served:
                await check_served_tokenizer(model, problems[0])
        for setting in config.settings:
            model = models[setting.fmt]
            store = RecordFile(config.out, setting.name)
            done = store.open({"setting": setting.to_dict(), "problems_file": digest, "model": model.identity,
                               "seed": config.seed, "concurrency": config.concurrency,
                               "max_batch": config.max_batch, "dtype": config.dtype,
                               "max_tokens": config.max_tokens}, config.fresh)
            rows[setting.name] = await run_setting(setting, problems, model, store, done, seed=config.seed,
                                                   concurrency=config.concurrency, max_tokens=config.max_tokens,
                                                   progress=config.progress)
    finally:
        for model in models.values():
            if model.served:
                await model.backend.aclose()
    return rows


def evaluate(config: EvalConfig, command: str) -> dict[str, Any]:
    """Run (or resume) the evaluation and write every output; returns the summary."""
    problems = load_problems(config.problems, config.limit)
    n_numbers = len(problems[0].nums)
    formats = sorted({s.fmt for s in config.settings})
    notes = [n for fmt in formats if (n := check_range(fmt, config.models[fmt], problems))]
    models = {fmt: open_model(fmt, config) for fmt in formats}
    load_before = os.getloadavg()[0]
    rows = asyncio.run(run_all(config, problems, models))
    summaries = [summarize_setting(s, rows[s.name], models[s.fmt].context_length) for s in config.settings]
    run = {
        "command": command,
        "problems_file": str(config.problems), "problems": len(problems), "n_numbers": n_numbers,
        "models": {fmt: {"name": m.name, **m.identity} for fmt, m in models.items()},
        "context_length": {fmt: m.context_length for fmt, m in models.items()},
        "backend": _backend_name(config, models),
        "seed": config.seed, "concurrency": config.concurrency, "max_tokens": config.max_tokens,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
                   f"with {torch.get_num_threads()} threads",
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # 1-minute, before and after
        "wall_s": sum(s["wall_s"] for s in summaries),
        "notes": notes,
    }
    summary = {"run": run, "settings": {s["setting"]["name"]: s for s in summaries}}
    out = config.out
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    atomic_write_bytes(out / "report.md", render(run, summaries).encode())
    names = " / ".join(f"{'APR' if fmt == 'apr' else 'SoS+'} {m.name}" for fmt, m in models.items())
    write_plots(out, summaries, f"This run: {names}\n{len(problems)} problems with {n_numbers} numbers")
    return summary
