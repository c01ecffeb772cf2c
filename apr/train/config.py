"""The settings of an SFT run, importable without torch (the CLI reads its defaults at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from apr.precision import Precision

LossOn = Literal["all", "completion"]
LongPolicy = Literal["error", "truncate", "drop"]


@dataclass
class SFTConfig:
    """One SFT run. Defaults suit the ``cpu`` preset; the paper's values are in docs/training.md."""

    data: list[str]  # JSONL/Parquet files or directories, rows with "prompt" and "completion"
    out: str  # run directory: checkpoints, final/, metrics.jsonl
    val_data: list[str] = field(default_factory=list)
    val_fraction: float = 0.01  # held out from ``data`` (by problem_id) when ``val_data`` is empty; 0 = no eval
    preset: str = "cpu"
    init_from: str | None = None  # start from this HF checkpoint instead of a fresh preset model
    tokenizer: str | None = None  # None = the bundled tokenizer
    context_length: int | None = None  # None = the preset's (or init_from's) max positions
    loss_on: LossOn = "all"  # "all" tokens (paper) or "completion" only
    long_policy: LongPolicy = "error"  # sequences over the context: "error", "truncate" or "drop"
    tokens_per_batch: int = 16384  # padded tokens per micro-batch on one process
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # final lr = lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget; the cosine decays over whichever ends first
    precision: Precision | None = None  # autocast; None: bf16 where the hardware has it (apr.precision.hardware_precision)
    eval_every: int = 200
    eval_tokens: int = 200_000  # cap on validation tokens per evaluation
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    resume: bool = False  # continue from the newest checkpoint in ``out`` if there is one
    progress: bool = True
    tensorboard: bool = False  # mirror metrics.jsonl to <out>/tensorboard
    device: str = "auto"  # auto (CUDA when torch sees a GPU), cpu, cuda or cuda:N (apr.runtime.device)


# Free to change when resuming: they do not shape the trajectory. Every other setting must match the
# interrupted run's (as in GRPO), so a new setting is protected by default.
RESUME_FREE = ("out", "resume", "progress", "tensorboard", "device", "eval_every", "eval_tokens", "save_every",
               "keep_checkpoints", "log_every")
