"""``apr train grpo``: GRPO over whole thread trees, starting from an SFT checkpoint (docs/rl.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from apr.cli.common import (HARDWARE_PRECISION, Precision, backend_url_option, choices, cpu_threads_option,
                            default_of, device_option, dtype_option, fail_cleanly, max_slots_option, precision_option,
                            progress_option, settings_from, tensorboard_option)
from apr.rl import config as rl_config
from apr.rl.config import GRPOConfig
from apr.rl.rewards import Rewards
from apr.runtime.cpu import set_cpu_threads
from apr.runtime.limits import Limits


Advantage = choices("Advantage", rl_config.Advantage)


_default = default_of


@fail_cleanly
def grpo(
    init_from: Path = typer.Option(..., help="SFT checkpoint: the policy's start and the frozen KL reference."),
    problems: Path = typer.Option(..., "--problems", "-p", help="Training problems (apr data problems JSONL/Parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, final/, metrics.jsonl."),
    val_problems: Optional[Path] = typer.Option(None, help="Held-out problems for greedy validation."),
    val_size: int = typer.Option(_default(GRPOConfig, "val_size"), help="Validate on the first N held-out problems."),
    prompts_per_step: int = typer.Option(_default(GRPOConfig, "prompts_per_step"), help="Problems per rollout batch."),
    num_generations: int = typer.Option(_default(GRPOConfig, "num_generations"), "--num-generations", "--group-size",
                                   help="Rollouts per problem (TRL's num_generations)."),
    temperature: float = typer.Option(_default(GRPOConfig, "temperature"),
                                      help="Rollout temperature; the policy trained is softmax(logits / T)."),
    steps: int = typer.Option(_default(GRPOConfig, "steps"), "--max-steps", "--steps", help="Rollout batches."),
    num_iterations: int = typer.Option(_default(GRPOConfig, "num_iterations"), "--num-iterations", "--inner-steps",
                                    help="Optimizer steps per rollout batch (TRL's num_iterations)."),
    lr: float = typer.Option(_default(GRPOConfig, "lr"), help="AdamW learning rate (constant)."),
    weight_decay: float = typer.Option(_default(GRPOConfig, "weight_decay"), help="AdamW weight decay."),
    epsilon: float = typer.Option(_default(GRPOConfig, "epsilon"), "--epsilon", "--clip",
                               help="PPO ratio clip (TRL's epsilon)."),
    beta: float = typer.Option(_default(GRPOConfig, "beta"), "--beta", "--kl-beta",
                                  help="k3 KL coefficient, 0 = no reference model (TRL's beta)."),
    advantage: Advantage = typer.Option(_default(GRPOConfig, "advantage"), help="std (group-normalised, paper) or mean."),
    join_samples: int = typer.Option(_default(GRPOConfig, "join_samples"),
                                     help="Extra root continuations sampled per post-join state whose children "
                                          "found an answer, trained as their own groups (0 = off)."),
    join_weight: float = typer.Option(_default(GRPOConfig, "join_weight"),
                                      help="Loss weight of one such group, in episodes."),
    max_grad_norm: float = typer.Option(_default(GRPOConfig, "max_grad_norm"), help="Gradient clipping norm."),
    tokens_per_batch: int = typer.Option(_default(GRPOConfig, "tokens_per_batch"), help="Padded tokens per micro-batch."),
    precision: Optional[Precision] = precision_option(),
    efficiency: float = typer.Option(_default(Rewards, "efficiency"), help="Parallelism bonus factor (correct answers only)."),
    efficiency_clip: float = typer.Option(_default(Rewards, "efficiency_clip"), help="Cap on the parallelism bonus."),
    thread_penalty: float = typer.Option(_default(Rewards, "thread_penalty"), help="Reward cost per child thread."),
    length_penalty: float = typer.Option(_default(Rewards, "length_penalty"), help="Reward cost per 1,000 decoded tokens."),
    sub_call_budget: Optional[int] = typer.Option(None, help="Prefix root prompts with 'Sub Call Budget: N '."),
    max_children: int = typer.Option(_default(Limits, "max_children"), help="Children run per spawn."),
    max_depth: int = typer.Option(_default(Limits, "max_depth"), min=0, help="Spawn nesting in rollouts and "
                                  "validation (1: only the root spawns; 2 for models trained on depth-2 trees)."),
    max_total_tokens: int = typer.Option(_default(Limits, "max_total_tokens"), help="Decoded tokens per episode."),
    max_tokens: int = typer.Option(_default(GRPOConfig, "max_tokens"), help="Decoded tokens per LM call."),
    server_url: Optional[str] = backend_url_option("the embedded engine for rollouts (SGLang: weights synced in "
                                                   "place)"),
    server_model: str = typer.Option(_default(GRPOConfig, "server_model"), "--served-model-name", "--server-model",
                                     help="Model name on --backend-url."),
    max_slots: int = max_slots_option(_default(GRPOConfig, "max_slots")),
    rollout_dtype: Optional[Precision] = dtype_option(None, "--rollout-dtype", unset=HARDWARE_PRECISION),
    val_every: int = typer.Option(_default(GRPOConfig, "val_every"), help="Steps between validations."),
    save_every: int = typer.Option(_default(GRPOConfig, "save_every"), help="Steps between checkpoints."),
    keep_checkpoints: int = typer.Option(_default(GRPOConfig, "keep_checkpoints"), help="Checkpoints kept for resume."),
    max_minutes: Optional[float] = typer.Option(None, help="Wall-clock budget: stop after the step that crosses it."),
    seed: int = typer.Option(_default(GRPOConfig, "seed"), help="Seeds problem order and sampling."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    progress: bool = progress_option(),
    tensorboard: bool = tensorboard_option(),
    cpu_threads: Optional[int] = cpu_threads_option(),
    device: str = device_option(),
) -> None:
    """Reinforce an APR model with GRPO: every thread of an episode shares the episode's advantage."""
    from apr.rl.grpo import train_grpo

    params = locals()
    config = settings_from(GRPOConfig, params, rewards=settings_from(Rewards, params),
                           limits=settings_from(Limits, params), backend="server" if server_url else "embedded")
    set_cpu_threads(cpu_threads)
    typer.echo(f"final checkpoint: {train_grpo(config)}")
