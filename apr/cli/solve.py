"""``apr solve TARGET NUMBERS...``: one Countdown problem by adaptive parallel reasoning, shown in full.

Runs the bundled APR model on the CPU with the embedded engine (or any OpenAI-compatible server
with ``--backend-url``, or the symbolic APR solver with ``--symbolic``), then prints the thread
tree, each thread's tokens and timing, the critical path, the verified answer or the verifier's
reason for rejecting it, and the run's metrics. Exit status: 0 with a verified answer, 1 without,
2 for bad input.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from apr.cli.common import (Precision, backend_url_option, context_length_option, cpu_threads_option, device_option,
                            dtype_option, fail_cleanly, max_slots_option, served_model_name_option)
from apr.countdown.task import Problem, SolveResult, check_problem, judge, solve_problem, verify_countdown
from apr.grammar import answer_path
from apr.runtime.backend import Backend, SamplingParams
from apr.runtime.limits import Limits
from apr.runtime.metrics import runtime_metrics
from apr.runtime.orchestrator import SolveConfig
from apr.serve.loading import DEFAULT_MODEL, load_backend, resolve_model
from apr.threads import Thread, TokenCounter, critical_path
from apr.viz.tree import html_page, rich_view

console = Console()
_INTEGER = re.compile(r"-?[0-9]+")
# "-5" is not an option here but a (rejected) negative number: let it through to parse_numbers.
CONTEXT = {"ignore_unknown_options": True}


def parse_numbers(values: list[str]) -> Problem:
    """TARGET then the input numbers, as in the paper's Fig. 1 (``27 22 26 31 53``)."""
    bad = [v for v in values if not _INTEGER.fullmatch(v)]
    if bad:
        raise ValueError(f"not an integer: {bad[0]!r} (usage: apr solve TARGET NUMBERS...)")
    if len(values) < 3:
        raise ValueError(f"give the target, then at least 2 numbers, e.g. 27 22 26 31 53; got {' '.join(values)}")
    target, *nums = map(int, values)
    return check_problem(nums, target)


@fail_cleanly
def solve(
    values: list[str] = typer.Argument(..., metavar="TARGET_NUMBERS", show_default=False,
                                       help="The target, then the numbers to combine, e.g. 27 22 26 31 53."),
    model: Optional[Path] = typer.Option(None, "--model", help=f"Checkpoint directory (or a training run with "
                                         f"final/). Default: the bundled {DEFAULT_MODEL.name} model."),
    backend_url: Optional[str] = backend_url_option(),
    served_model_name: Optional[str] = served_model_name_option(),
    context_length: Optional[int] = context_length_option(),
    symbolic: bool = typer.Option(False, help="Run the symbolic APR solver instead of a model."),
    sub_call_budget: Optional[int] = typer.Option(None, min=0, help="Prefix the prompt with 'Sub Call Budget: N ' "
                                                  "(--symbolic: the parent's beam, i.e. children per spawn)."),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0, help="0 = greedy (the paper's default)."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed (also the symbolic solver's)."),
    max_depth: int = typer.Option(Limits.max_depth, min=0, help="Spawn nesting: 1 = only the root spawns (the paper)."),
    max_children: int = typer.Option(Limits.max_children, min=0, help="Children run per spawn."),
    max_threads: int = typer.Option(Limits.max_threads, min=1, help="Threads in the tree, root included."),
    max_spawns: int = typer.Option(Limits.max_spawns, min=0, help="Spawns per thread."),
    max_total_tokens: int = typer.Option(Limits.max_total_tokens, min=1, help="Decoded tokens, all threads together."),
    timeout: Optional[float] = typer.Option(None, min=0.1, help="Wall-clock seconds for the whole tree."),
    max_slots: int = max_slots_option(),
    cpu_threads: Optional[int] = cpu_threads_option(),
    device: str = device_option(),
    dtype: Precision = dtype_option("fp32"),
    show_text: bool = typer.Option(False, help="Print every thread's text in the tree."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the result and thread tree as JSON here."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML view of the tree here."),
) -> None:
    """Solve a Countdown problem: reach TARGET from NUMBERS with + - * /, each number used once."""
    problem = parse_numbers(values)
    if symbolic and (model or backend_url):
        raise ValueError("--symbolic runs no model: leave out --model and --backend-url")
    if symbolic and sub_call_budget == 0:
        raise ValueError("with --symbolic, --sub-call-budget is the parent's beam and must be >= 1")
    if model and backend_url:
        raise ValueError("--model and --backend-url exclude each other")
    limits = Limits(max_children=max_children, max_depth=max_depth, max_threads=max_threads, max_spawns=max_spawns,
                    max_total_tokens=max_total_tokens, timeout_s=timeout)
    if symbolic:
        source, count = "symbolic APR solver", _bundled_counter()
        tree = _symbolic(problem, sub_call_budget, limits.max_depth, seed or 0)
        recount(tree, count)
        result = judge(problem, tree)
    else:
        backend, source, count = _backend(problem, model, backend_url, served_model_name, max_slots, cpu_threads,
                                          context_length, device, dtype.value)
        result = asyncio.run(_run(problem, backend, _config(temperature, seed, limits), sub_call_budget))
    _report(result, source, count, show_text)
    _write_outputs(result, source, count, json_path, html_path)
    if not result.verdict.ok:
        raise typer.Exit(1)


# -- running -----------------------------------------------------------------------------------
def _bundled_counter() -> TokenCounter:
    """Token counts (no BOS) with the bundled tokenizer (imported here: transformers is slow to import)."""
    from apr.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _backend(problem: Problem, model: Path | None, url: str | None, name: str | None, max_slots: int,
             cpu_threads: int | None, context_length: int | None = None, device: str = "auto",
             dtype: str = "fp32") -> tuple[Backend, str, TokenCounter]:
    """The embedded engine over ``model`` (default: the bundled one), or a client of the server at ``url``
    (llama-server's native API, else OpenAI-compatible) with the bundled tokenizer.

    A problem outside the checkpoint's recorded training range is refused before the model loads.
    """
    if url:
        from apr.runtime.codec import TokenCodec
        from apr.runtime.remote import open_remote
        from apr.tokenizer import load_tokenizer

        backend, source = open_remote(url, TokenCodec(load_tokenizer()), model=name, context_length=context_length)
        return backend, source, backend.count_tokens
    from apr.models.trained_range import check_in_range

    path = resolve_model(model)
    check_in_range(path, problem.nums, problem.target)
    backend = load_backend(path, max_slots, cpu_threads, device, dtype=dtype)
    return backend, f"{path} (embedded engine, {backend.engine.device})", backend.count_tokens


def _config(temperature: float, seed: int | None, limits: Limits) -> SolveConfig:
    return SolveConfig(sampling=SamplingParams(temperature=temperature, seed=seed), limits=limits,
                       verify=verify_countdown)


async def _run(problem: Problem, backend: Backend, config: SolveConfig, sub_call_budget: int | None) -> SolveResult:
    try:
        return await solve_problem(problem, backend, config, sub_call_budget)
    finally:
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()


def _symbolic(problem: Problem, beam: int | None, max_depth: int, seed: int) -> Thread:
    """The data generator's APR search (``apr.countdown.search``): a tree in the model's format."""
    from apr.countdown.search import AprSettings, apr_search

    beam = beam or 10  # the released generator's widest beam
    start = time.perf_counter()
    tree = apr_search(list(problem.nums), problem.target,
                      AprSettings(beam_size=beam, sub_beam_size=max(beam, 15), max_depth=max_depth),
                      random.Random(seed))
    tree.meta["wall_s"] = time.perf_counter() - start
    return tree


def recount(root: Thread, count: TokenCounter) -> None:
    """Count every prompt and span with the tokenizer (the symbolic solver and remote servers give none)."""
    for thread in root.walk():
        thread.prompt_tokens = count(thread.prompt)
        for span in thread.spans:
            span.n_tokens = count(span.text)
    root.meta["metrics"] = runtime_metrics(root).to_dict()


# -- output ------------------------------------------------------------------------------------
def _report(result: SolveResult, source: str, count: TokenCounter, show_text: bool) -> None:
    p, tree = result.problem, result.tree
    console.print(f"[bold]apr solve[/]: reach {p.target} from {list(p.nums)} · {escape(source)}")
    console.print(rich_view(tree, count, show_text, extra=_extra(result)))
    console.print(_thread_table(tree, count))
    tokens, path = critical_path(tree, count)
    console.print(f"critical path: {' → '.join(path)} ({tokens} sequential tokens)")
    if result.verdict.ok:
        console.print(f"[bold green]answer: {result.expression}[/]  (verified: {', '.join(result.verdict.operations)})")
    else:
        note = "" if result.solvable else " (and the problem has no solution)"
        console.print(f"[bold red]no valid answer[/]: {escape(str(result.verdict))}{note}")
        if result.lost_at_join is not None:
            console.print(f"[bold yellow]lost at the join[/]: thread {result.lost_at_join} found a verified answer, "
                          "but the root did not carry it into its own")


def _extra(result: SolveResult) -> dict[str, Any]:
    m = runtime_metrics(result.tree)
    extra = {"wall time": f"{m.wall_s:.2f} s"}
    if m.prefill_tokens or m.cached_tokens:  # a model ran (the symbolic solver prefills nothing)
        extra["prompt tokens prefilled / from cache"] = f"{m.prefill_tokens} / {m.cached_tokens}"
    return extra


def _thread_table(root: Thread, count: TokenCounter) -> Table:
    """Per thread: tokens, when it ran (seconds since the start), how it ended, its answer (✓ verified)."""
    table = Table(title="threads (tokens; seconds since the start)", title_justify="left")
    for column in ("thread", "node", "prompt", "generated", "start", "end", "finish", "answer"):
        table.add_column(column, justify="left" if column in ("thread", "node", "finish") else "right")
    for t in root.walk():
        path = answer_path(t.context())
        answer = "–" if path is None else "✓" if verify_countdown(t.prompt, path) else "✗"
        table.add_row(t.id, str(t.meta.get("node", "0")), str(t.prompt_token_count(count)),
                      str(t.generated_tokens(count)), _seconds(t.meta.get("t_start")), _seconds(t.meta.get("t_end")),
                      t.finish_reason or "–", answer)
    return table


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _write_outputs(result: SolveResult, source: str, count: TokenCounter, json_path: Path | None,
                   html_path: Path | None) -> None:
    if json_path is not None:
        json_path.write_text(json.dumps({"source": source, **result.to_dict()}, indent=1, ensure_ascii=False) + "\n",
                             encoding="utf-8")
        console.print(f"wrote {escape(str(json_path))}")
    if html_path is not None:
        p = result.problem
        extra = {"answer": result.expression or str(result.verdict), **_extra(result)}
        html_path.write_text(html_page(result.tree, f"apr solve: {p.target} from {list(p.nums)}", count, extra),
                             encoding="utf-8")
        console.print(f"wrote {escape(str(html_path))}")
