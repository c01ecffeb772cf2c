"""``apr ask``: adaptive parallel reasoning with any OpenAI-compatible chat model, no training."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from apr.cli.common import choices, served_model_name_option
from apr.prompted.client import ChatClient, ClientConfig, PromptedError
from apr.prompted.evaluate import EvalItem, compare, load_items, run_eval
from apr.prompted.orchestrator import AskConfig, Mode, PlanConstraint, Result, ask as ask_once
from apr.prompted.render import eval_table, result_table
from apr.viz.tree import html_page, rich_tree

console = Console()
errors = Console(stderr=True)
ConstrainPlan = choices("ConstrainPlan", PlanConstraint)


def ask(
    question: Optional[str] = typer.Argument(None, help="The task to solve. Leave out with --eval."),
    eval_file: Optional[Path] = typer.Option(
        None, "--eval", help="JSONL file, one {\"question\": ..., \"answer\": ...} per line (answer optional): "
        "run every question sequentially and in --mode, and compare."),
    mode: Mode = typer.Option(Mode.parallel, help="parallel: plan, fork, join. sequential: one call. "
                              "vote: self-consistency over --votes samples."),
    model: Optional[str] = served_model_name_option("--model", envvar="APR_MODEL"),
    base_url: Optional[str] = typer.Option(None, "--backend-url", "--base-url", envvar="OPENAI_BASE_URL",
                                           help="The OpenAI-compatible /v1 server the model runs on, e.g. "
                                                "http://localhost:8000/v1."),
    api_key: Optional[str] = typer.Option(None, envvar="OPENAI_API_KEY", show_default=False,
                                          help="API key; default EMPTY (local servers accept any)."),
    max_threads: int = typer.Option(4, min=1, help="Model calls in flight at once."),
    max_subtasks: int = typer.Option(6, min=2, help="Widest plan accepted."),
    max_depth: int = typer.Option(1, min=1, help="Planning levels (2: subtasks may split again)."),
    votes: int = typer.Option(5, min=2, help="Samples in vote mode."),
    verify: bool = typer.Option(False, help="Check each subtask result with one more call before merging."),
    extract: str = typer.Option("answer", help="Answer format: answer (a final 'Answer: ...' line), boxed, "
                                "last-line, or re:<regex>."),
    max_tokens: int = typer.Option(2048, min=1, help="Completion tokens per subtask, merge or answer call."),
    plan_max_tokens: int = typer.Option(512, min=1, help="Completion tokens per plan call (a plan is short)."),
    constrain_plan: ConstrainPlan = typer.Option(
        ConstrainPlan.auto, help="Constrain plan replies to the plan's JSON Schema: json_schema (OpenAI, vLLM, "
        "llama-server), json_object (llama-cpp-python), auto (the first the server takes), off."),
    temperature: Optional[float] = typer.Option(None, min=0.0, help="Sampling temperature; default: the server's."),
    token_budget: Optional[int] = typer.Option(None, min=1, help="Total tokens for the attempt; past it, "
                                               "fall back to one sequential answer."),
    time_budget: Optional[float] = typer.Option(None, min=0.1, help="Seconds for the attempt; likewise."),
    timeout: float = typer.Option(120.0, min=0.1, help="Seconds per call, retries included."),
    retries: int = typer.Option(2, min=0, help="Retries of calls the server never started (unreachable, "
                                "429, 502, 503)."),
    baseline: bool = typer.Option(False, help="Also run the sequential baseline and report the speedup."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the run (tree included) as JSON here."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write the thread tree as an HTML page here "
                                             "(not with --eval)."),
) -> None:
    """Solve QUESTION by planning, forking into concurrent subtasks and joining their results."""
    if (question is None) == (eval_file is None):
        raise typer.BadParameter("give either a QUESTION or --eval FILE")
    if eval_file is not None and html_path is not None:
        raise typer.BadParameter("--html shows one run's tree: use --json with --eval")
    try:
        config = AskConfig(mode=mode, max_threads=max_threads, max_subtasks=max_subtasks, max_depth=max_depth,
                           votes=votes, verify=verify, extract=extract, max_tokens=max_tokens,
                           plan_max_tokens=plan_max_tokens, constrain_plan=constrain_plan.value,
                           temperature=temperature, token_budget=token_budget, time_budget=time_budget)
    except ValueError as e:  # typer has checked the ranges already: this is the answer format
        raise typer.BadParameter(str(e), param_hint="--extract") from None
    client_config = ClientConfig(model=model or "", base_url=base_url, api_key=api_key, timeout=timeout,
                                 retries=retries)
    try:
        if eval_file is not None:
            _evaluate(load_items(eval_file), client_config, config, json_path)
        else:
            _answer(question or "", client_config, config, baseline, json_path, html_path)
    except (PromptedError, OSError) as e:
        errors.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        if json_path is not None:  # the record of a failed run, so a script never finds nothing
            failed = {"question": question, "eval": str(eval_file) if eval_file else None, "answer": None,
                      "error": f"{type(e).__name__}: {e}"}
            _write(json_path, json.dumps(failed, indent=1, ensure_ascii=False) + "\n")
        raise typer.Exit(1) from None


def _answer(question: str, client_config: ClientConfig, config: AskConfig, baseline: bool,
            json_path: Path | None, html_path: Path | None) -> None:
    async def run() -> tuple[Result | None, Result]:
        async with ChatClient(client_config) as client:
            if baseline:
                return await compare(question, client, config)
            return None, await ask_once(question, client, config)

    base, result = asyncio.run(run())
    model = result.tree.meta["model"]
    console.print(rich_tree(result.tree, preview=90))
    console.print(Panel(escape(result.text), title="answer: " + escape(result.answer or "(none found)")))
    console.print(result_table(result, base))
    out = {"question": question, "model": model, "mode": config.mode.value, **result.to_dict()}
    if base is not None:
        out["baseline"] = base.to_dict()
    _write(json_path, json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    _write(html_path, html_page(result.tree, title=f"apr ask · {model}",
                                extra={"answer": result.answer, "latency_s": result.seconds}))


def _evaluate(items: list[EvalItem], client_config: ClientConfig, config: AskConfig, json_path: Path | None) -> None:
    def progress(i: int, record: dict[str, Any]) -> None:
        cells = [f"{arm} {record[arm]['seconds']:.2f} s {_mark(record[arm]['correct'])}"
                 for arm in ("sequential", config.mode.value)]
        console.print(f"[{i + 1}/{len(items)}] " + " | ".join(cells))

    async def run() -> dict[str, Any]:
        async with ChatClient(client_config) as client:
            return await run_eval(items, client, config, progress)

    summary = asyncio.run(run())
    console.print(eval_table(summary))
    console.print_json(data={k: v for k, v in summary.items() if k != "records"})
    _write(json_path, json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def _write(path: Path | None, text: str) -> None:
    if path is not None:
        path.write_text(text, encoding="utf-8")
        console.print(f"wrote {escape(str(path))}")


def _mark(correct: bool | None) -> str:
    return {True: "[green]right[/]", False: "[red]wrong[/]", None: ""}[correct]
