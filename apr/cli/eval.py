"""``apr eval``: accuracy, tokens, latency and context windows of APR and SoS+ checkpoints.

Every run resumes: the same command after a kill continues where it stopped, and once all
settings are done it only rewrites the summary, report and figures.
"""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from apr.cli.common import (Precision, backend_url_option, context_length_option, cpu_threads_option, device_option,
                            dtype_option, fail_cleanly, max_slots_option, progress_option)
from apr.eval.settings import EvalConfig, sweep
from apr.precision import TORCH_NAMES
from apr.runtime.cpu import set_cpu_threads

console = Console()

# Regenerates docs/results for the bundled models on the bundled held-out split (data/c3/test.jsonl):
# greedy decoding (the models' accuracy), APR also with at most 1, 2 and 4 children run per spawn (the
# models are trained without budget prefixes, so the compute sweep caps the runtime instead). 2.4
# minutes on the idle 2-core development CPU (docs/evaluation.md).
def _numbers(text: str | None, option: str, cast: type) -> list:
    if not text:
        return []
    try:
        return [cast(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected a comma-separated list of numbers, got {text!r}",
                                 param_hint=option) from None


@fail_cleanly
def eval_cmd(
    ctx: typer.Context,
    problems: Optional[Path] = typer.Option(None, "--problems", "-p", help="Problems file (JSONL or Parquet rows "
                                            "with nums and target), e.g. the held-out split runs/c4/test.jsonl."),
    apr: Optional[str] = typer.Option(None, help="APR checkpoint folder (with --backend-url: the served model name)."),
    sosp: Optional[str] = typer.Option(None, help="SoS+ checkpoint folder (with --backend-url: the served model "
                                       "name)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder for the report, samples and "
                                       "figures (required)."),
    sub_call_budgets: Optional[str] = typer.Option(None, help="APR: Sub Call Budget prompt prefixes to sweep, "
                                                   "e.g. 0,2,4,6,8,10 (the unconditioned run is always included)."),
    max_children: Optional[str] = typer.Option(None, help="APR: caps on the children the runtime runs per spawn, "
                                               "e.g. 1,2,4 (the rest are answered No Solution)."),
    max_depth: Optional[int] = typer.Option(None, min=1, help="APR: spawn nesting the runtime allows (1: only the "
                                            "root spawns, the paper; 2 for models trained on depth-2 trees). "
                                            "[default: 1]"),
    token_budgets: Optional[str] = typer.Option(None, help="SoS+: Token Budget prompt prefixes, e.g. 1024,4096."),
    sosp_samples: Optional[str] = typer.Option(None, help="SoS+: samples per problem, one setting each, e.g. 1,8 "
                                               "(pass@n and cons@n for every n up to each). [default: 1]"),
    temperatures: Optional[str] = typer.Option(None, help="Sampling temperatures, e.g. 0,0.1,0.5,1.0. [default: 0]"),
    seed: int = typer.Option(0, help="Sampling seed (each sample's seeds derive from it)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate the first N problems only."),
    concurrency: Optional[int] = typer.Option(None, min=1, help="Problems in flight at once (all samples of a "
                                              "problem run together). 1 measures latency; more gives throughput. "
                                              "[default: 1]"),
    max_slots: int = max_slots_option(),
    dtype: Optional[Precision] = dtype_option(),
    max_tokens: Optional[int] = typer.Option(None, min=1, help="Tokens per LM call. [default: the model's context]"),
    backend_url: Optional[str] = backend_url_option(),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder. [default: the checkpoint's, else the "
                                            "bundled one]"),
    context_length: Optional[int] = context_length_option("the local checkpoint's"),
    cpu_threads: Optional[int] = cpu_threads_option(),
    device: str = device_option(),
    fresh: bool = typer.Option(False, help="Discard earlier results of these settings instead of resuming."),
    progress: bool = progress_option(),
) -> None:
    """Evaluate APR and/or SoS+ checkpoints on a problems file: accuracy, tokens, latency, figures."""
    opt = {k: v for k, v in ctx.params.items() if v is not None}
    if "problems" not in opt:
        raise typer.BadParameter("give --problems", param_hint="--problems")
    if "out" not in opt:
        raise typer.BadParameter("give --out, the folder for the report, samples and figures", param_hint="--out")
    models = {fmt: opt[fmt] for fmt in ("apr", "sosp") if fmt in opt}
    if not models:
        raise typer.BadParameter("give --apr and/or --sosp", param_hint="--apr")
    settings = sweep(list(models), _numbers(opt.get("temperatures", "0"), "--temperatures", float),
                     sub_call_budgets=_numbers(opt.get("sub_call_budgets"), "--sub-call-budgets", int),
                     max_children=_numbers(opt.get("max_children"), "--max-children", int),
                     token_budgets=_numbers(opt.get("token_budgets"), "--token-budgets", int),
                     sosp_samples=_numbers(opt.get("sosp_samples", "1"), "--sosp-samples", int) or [1],
                     max_depth=opt.get("max_depth", 1))
    config = EvalConfig(problems=Path(opt["problems"]), out=Path(opt["out"]),
                        settings=tuple(settings), models=models, backend_url=opt.get("backend_url"),
                        tokenizer=opt.get("tokenizer"), context_length=opt.get("context_length"),
                        limit=opt.get("limit"), seed=seed, concurrency=opt.get("concurrency", 1),
                        max_batch=max_slots, dtype=TORCH_NAMES[opt.get("dtype", "fp32")], device=device,
                        max_tokens=opt.get("max_tokens"), fresh=fresh, progress=progress)
    from apr.eval.harness import evaluate  # torch and the runtime load only once the options are valid

    set_cpu_threads(opt.get("cpu_threads"))
    _print(evaluate(config, _command(opt)), config.out)


def _command(opt: dict[str, Any]) -> str:
    """The full command line that reproduces this run."""
    args = ["apr", "eval"]
    for key, value in opt.items():
        if key in ("fresh", "progress") or value is False:
            continue
        args += [f"--{key.replace('_', '-')}", str(value.value if isinstance(value, Enum) else value)]
    return shlex.join(args)


def _print(summary: dict[str, Any], out: Path) -> None:
    table = Table(title="apr eval", title_style="bold")
    for col in ("setting", "accuracy %", "total tokens", "sequential tokens", "longest context", "latency s"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for name, s in summary["settings"].items():
        table.add_row(name, f"{100 * s['accuracy']:.1f}", f"{s['total_tokens']:,.0f}", f"{s['sequential_tokens']:,.0f}",
                      f"{s['longest_context']:,.0f}", f"{s['latency_s']:.2f}")
    console.print(table)
    for note in summary["run"]["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"wrote {out}/report.md, {out}/summary.json, {out}/samples/ and the figures")
