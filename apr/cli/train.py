"""``apr train``: supervised training from scratch (``sft``).

Runs the same under ``torchrun`` / ``accelerate launch`` (DDP), e.g.
``torchrun --nproc-per-node 8 -m apr.cli.train sft --preset paper ...`` (see docs/training.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional

import typer

from apr.cli.common import (Precision, choices, cpu_threads_option, default_of, device_option, fail_cleanly,
                            precision_option, progress_option, settings_from, tensorboard_option)
from apr.cli.train_grpo import grpo
from apr.runtime.cpu import set_cpu_threads
from apr.train import config as sft_config

LossOn = choices("LossOn", sft_config.LossOn)

app = typer.Typer(no_args_is_help=True, help="Train models: SFT from scratch on SoS+/APR thread data.")


@app.callback()
def _group() -> None:
    """Train models: SFT from scratch on SoS+/APR thread data."""


app.command("grpo")(grpo)


def _default(name: str) -> Any:
    return default_of(sft_config.SFTConfig, name)


@app.command()
@fail_cleanly
def sft(
    data: List[Path] = typer.Option(..., "--data", "-d", help="SFT JSONL/Parquet files or folders (repeatable)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, final/, metrics.jsonl."),
    val_data: List[Path] = typer.Option([], "--val-data", help="Validation files (default: hold out --val-fraction)."),
    val_fraction: float = typer.Option(_default("val_fraction"), help="Problems held out when no --val-data; 0 = none."),
    preset: str = typer.Option(_default("preset"), help="Model size: cpu, mid or paper."),
    init_from: Optional[Path] = typer.Option(None, help="Start from this checkpoint instead of a fresh model."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer folder (default: bundled)."),
    context_length: Optional[int] = typer.Option(None, help="Max positions (default: the preset's, 4096)."),
    loss_on: LossOn = typer.Option(_default("loss_on"), help="all (the paper) or completion."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut sequences longer than the context."),
    drop_long: bool = typer.Option(False, "--drop-long", help="Skip sequences longer than the context."),
    tokens_per_batch: int = typer.Option(_default("tokens_per_batch"), help="Padded tokens per micro-batch per process."),
    grad_accum: int = typer.Option(_default("grad_accum"), help="Micro-batches per optimizer step."),
    lr: float = typer.Option(_default("lr"), help="Peak learning rate (the paper: 5e-5 at 228M)."),
    min_lr_ratio: float = typer.Option(_default("min_lr_ratio"), help="Final lr as a fraction of the peak."),
    warmup_steps: int = typer.Option(_default("warmup_steps"), help="Linear warmup steps."),
    weight_decay: float = typer.Option(_default("weight_decay"), help="AdamW weight decay (matrices only)."),
    max_grad_norm: float = typer.Option(_default("max_grad_norm"), help="Gradient clipping norm."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps."),
    max_minutes: Optional[float] = typer.Option(None, help="Wall-clock budget; the lr decays over it."),
    precision: Optional[Precision] = precision_option(),
    eval_every: int = typer.Option(_default("eval_every"), help="Steps between validation passes."),
    eval_tokens: int = typer.Option(_default("eval_tokens"), help="Validation tokens per pass."),
    save_every: int = typer.Option(_default("save_every"), help="Steps between checkpoints."),
    keep_checkpoints: int = typer.Option(_default("keep_checkpoints"), help="Checkpoints kept for resume."),
    log_every: int = typer.Option(_default("log_every"), help="Steps between metrics.jsonl records."),
    seed: int = typer.Option(_default("seed"), help="Seeds the init and the data order."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    progress: bool = progress_option(),
    tensorboard: bool = tensorboard_option(),
    cpu_threads: Optional[int] = cpu_threads_option(),
    device: str = device_option(),
) -> None:
    """Train a Llama model from scratch on SFT rows (BOS + prompt + completion + EOS)."""
    from apr.train.sft import train_sft

    if truncate and drop_long:
        raise ValueError("--truncate and --drop-long exclude each other")
    config = settings_from(sft_config.SFTConfig, locals(), long_policy="truncate" if truncate else "drop" if drop_long else "error")
    set_cpu_threads(cpu_threads)
    path = train_sft(config)
    if os.environ.get("RANK", "0") == "0":  # one line per run, not per process
        typer.echo(f"final checkpoint: {path}")


if __name__ == "__main__":  # torchrun / accelerate launch: `-m apr.cli.train sft ...`
    app()
