"""``apr data``: problems, demonstrations, SFT examples and statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from apr.cli.common import choices, default_workers, fail_cleanly, progress_option
from apr.data.generate import TraceFormat, TraceOrder
from apr.data.sft import Condition as SftCondition, Segments as SftSegments
from apr.data.stats import WINDOWS

app = typer.Typer(no_args_is_help=True, help="Generate Countdown problems, solver demonstrations and SFT data.")
console = Console(stderr=True)


Format = choices("Format", TraceFormat)
Order = choices("Order", TraceOrder)
Condition = choices("Condition", SftCondition)
Segments = choices("Segments", SftSegments)


FRESH_HELP = ("Discard the shards an interrupted run left instead of resuming them (a resume with other "
              "inputs or settings is refused).")


@app.command()
@fail_cleanly
def problems(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for train/val/test JSONL files."),
    train: int = typer.Option(10_000, help="Training problems."),
    val: int = typer.Option(500, help="Validation problems."),
    test: int = typer.Option(500, help="Held-out test problems."),
    numbers: int = typer.Option(4, help="Input numbers per problem (3 or 4 in the paper's setting)."),
    min_number: int = typer.Option(1, help="Smallest input number."),
    max_number: int = typer.Option(99, help="Largest input number."),
    min_target: int = typer.Option(10, help="Smallest target."),
    max_target: int = typer.Option(100, help="Largest target."),
    seed: int = typer.Option(0, help="Same seed, same files, whatever the worker count."),
    workers: int = typer.Option(default_workers(), help="Worker processes."),
    fresh: bool = typer.Option(False, help=FRESH_HELP),
    progress: bool = progress_option(),
) -> None:
    """Draw solvable problems, de-duplicated across splits (multiset of numbers + target)."""
    from apr.countdown.problems import ProblemSpec
    from apr.data.generate import generate_problems

    spec = ProblemSpec(numbers, min_number, max_number, min_target, max_target)
    paths = generate_problems(out, spec, {"train": train, "val": val, "test": test}, seed, workers, fresh=fresh,
                                progress=progress)
    for split, path in paths.items():
        console.print(f"[green]wrote[/] {path}")


@app.command()
@fail_cleanly
def traces(
    problems_file: Path = typer.Option(..., "--problems", "-p", help="Problems JSONL/Parquet (from `apr data problems`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .jsonl or .parquet."),
    format: Format = typer.Option(Format.apr, "--format", "-f", help="sosp (serialized search) or apr (fork-join threads)."),
    max_beam: Optional[int] = typer.Option(None, help="Beam ~ U{min_beam..max_beam} (default: 10 for apr, 5 for sosp)."),
    min_beam: int = typer.Option(1, help="Smallest beam drawn (the paper: 1)."),
    max_sub_beam: int = typer.Option(15, help="APR child beam ~ U{beam..max_sub_beam}."),
    p_spawn: float = typer.Option(0.9, help="APR: probability an expansion delegates its successors."),
    p_dfs: float = typer.Option(0.5, help="SoS+: probability an expansion doubles down into DFS."),
    max_depth: int = typer.Option(1, help="APR: spawn nesting depth (the paper: 1)."),
    order: Order = typer.Option(Order.shuffled, help="shuffled (the paper) or canonical: successors written, and APR "
                                               "children spawned, in node order; far easier for small models."),
    seed: int = typer.Option(0, help="Seed for beams and search order."),
    limit: Optional[int] = typer.Option(None, help="Only the first N problems."),
    workers: int = typer.Option(default_workers(), help="Worker processes."),
    fresh: bool = typer.Option(False, help=FRESH_HELP),
    progress: bool = progress_option(),
) -> None:
    """Solve every problem with the symbolic hybrid search and record the demonstration."""
    from apr.data.generate import TraceSettings, generate_traces

    beam = max_beam if max_beam is not None else (10 if format is Format.apr else 5)
    settings = TraceSettings(format.value, beam, max_sub_beam, p_spawn, p_dfs, max_depth, min_beam,  # type: ignore[arg-type]
                             order.value)  # type: ignore[arg-type]
    summary = generate_traces(problems_file, out, settings, seed, workers, limit=limit, fresh=fresh, progress=progress)
    console.print(f"[green]wrote[/] {summary['path']}: {summary['traces']} traces, "
                  f"solver success {summary['success_rate']:.1%}")


@app.command()
@fail_cleanly
def sft(
    traces_file: Path = typer.Option(..., "--traces", "-t", help="Demonstrations (from `apr data traces`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .jsonl or .parquet."),
    condition: Condition = typer.Option(Condition.none, help="Budget prefix: none, sub-calls (APR) or tokens (SoS+)."),
    only_solved: bool = typer.Option(False, help="Keep only demonstrations that reach the target."),
    segments: Segments = typer.Option(Segments.all, help="all; root-last: only the root's segment after its last join "
                                             "(the answer it rebuilds from its children), for a second SFT phase; "
                                             "joined-last: that segment of every thread that joins (nested spawns)."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer folder for token budgets (default: bundled)."),
) -> None:
    """One example per thread segment, with the prompt/completion boundary for loss masking."""
    from apr.data.sft import SftOptions, export_sft

    count = None
    if condition is Condition.tokens:
        from apr.tokenizer import load_tokenizer

        tok = load_tokenizer(tokenizer)
        count = lambda text: len(tok.encode(text, add_special_tokens=False)) + 2  # noqa: E731  (BOS, EOS)
    summary = export_sft(traces_file, out, SftOptions(condition.value, only_solved, segments.value), count)  # type: ignore[arg-type]
    console.print(f"[green]wrote[/] {summary['path']}: {summary['examples']} examples "
                  f"from {summary['demonstrations']} demonstrations")


@app.command()
@fail_cleanly
def stats(
    traces_file: Path = typer.Argument(..., help="Demonstrations file."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer folder (default: bundled)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers as JSON."),
    windows: str = typer.Option(",".join(map(str, WINDOWS)), help="Context windows to report the share of traces "
                                "whose every thread fits (BOS and EOS included), comma-separated."),
) -> None:
    """Solver success rate, tokens per trace, longest thread, children per spawn, sequential vs total."""
    from apr.data.io import atomic_write_bytes
    from apr.data.stats import trace_stats
    from apr.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    try:
        sizes = [int(w) for w in windows.split(",")]
    except ValueError:
        raise ValueError(f"--windows must be comma-separated token counts, got {windows!r}") from None
    result = trace_stats(traces_file, lambda text: len(tok.encode(text, add_special_tokens=False)), sizes)
    table = Table(title=f"{traces_file} ({result['format']}, {result['traces']} traces)")
    for col in ("metric", "mean", "median", "max"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    table.add_row("solver success rate", f"{result['success_rate']:.1%}", "", "")
    table.add_row("traces that spawn", f"{result['traces_that_spawn']:.1%}", "", "")
    for window, share in result["fits"].items():
        table.add_row(f"traces whose threads fit {window} tokens", f"{share:.1%}", "", "")
    for key in ("total_tokens", "sequential_tokens", "longest_thread_tokens", "threads_per_trace",
                "spawns_per_trace", "children_per_spawn"):
        s = result[key]
        table.add_row(key.replace("_", " "), f"{s['mean']:.1f}", f"{s['median']:.1f}", f"{s['max']:.0f}")
    Console().print(table)
    if json_out:
        atomic_write_bytes(json_out, (json.dumps(result, indent=2) + "\n").encode())
