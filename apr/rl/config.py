"""The settings of a GRPO run, importable without torch (the CLI reads its defaults at start-up).

Defaults are the paper's APR config (spec §7.3) where one exists; docs/rl.md lists the CPU-sized
values for the bundled model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from apr.rl.rewards import Rewards
from apr.runtime.limits import Limits
from apr.precision import Precision

Advantage = Literal["std", "mean"]


class GRPOConfigError(ValueError):
    """A setting or input that cannot work; reported before any model is loaded."""


@dataclass
class GRPOConfig:
    init_from: str  # SFT checkpoint: the policy's start and the frozen KL reference
    problems: str  # training problems (``apr data problems`` JSONL/Parquet)
    out: str  # run directory: checkpoints, final/, metrics.jsonl
    val_problems: str | None = None  # held-out problems for greedy validation; None = no validation
    val_size: int = 200  # the first N held-out problems
    prompts_per_step: int = 64
    num_generations: int = 5  # rollouts per prompt
    # Rollout sampling temperature (the paper: 1). The policy trained is softmax(logits / temperature),
    # so a lower one keeps rollouts near the greedy decoding that validation measures.
    temperature: float = 1.0
    steps: int = 150  # rollout batches
    num_iterations: int = 2  # optimizer steps per rollout batch (the first one is on-policy)
    lr: float = 1e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    epsilon: float = 0.2  # PPO ratio clip
    beta: float = 0.001  # k3 KL to the reference; the paper: 0.001 APR, 0.01 SoS+
    advantage: Advantage = "std"  # group-normalised (paper) or only mean-centred (ThreadWeaver)
    # Extra groups on the root's post-join continuation (apr.rl.continuations): K samples per
    # episode whose children found an answer, each group weighing ``join_weight`` episodes.
    join_samples: int = 0
    join_weight: float = 1.0
    max_grad_norm: float = 1.0
    tokens_per_batch: int = 16384  # padded tokens per micro-batch (gradient accumulation)
    precision: Precision | None = None  # autocast for the training forward (weights stay fp32); None: hardware_precision
    rewards: Rewards = field(default_factory=Rewards)
    sub_call_budget: int | None = None  # "Sub Call Budget: N " root-prompt prefix (cond models)
    limits: Limits = field(default_factory=Limits)  # per-episode runtime limits
    max_tokens: int = 4096  # per LM call
    backend: Literal["embedded", "server"] = "embedded"
    server_url: str | None = None  # OpenAI-compatible base URL (SGLang), e.g. http://127.0.0.1:30000/v1
    server_model: str = "apr"  # model name the server serves (SGLang: --served-model-name apr)
    max_slots: int = 32  # embedded engine: sequences decoded together
    rollout_dtype: Precision | None = None  # embedded engine weights; None: hardware_precision
    val_every: int = 25  # steps between validations (also before the first step and at the end)
    save_every: int = 10
    keep_checkpoints: int = 2
    max_minutes: float | None = None  # wall-clock budget; the run stops after the step that crosses it
    seed: int = 0
    resume: bool = False
    progress: bool = True
    tensorboard: bool = False  # mirror metrics.jsonl to <out>/tensorboard
    device: str = "auto"  # policy, reference and embedded rollouts: auto, cpu, cuda or cuda:N


# Settings renamed to TRL's GRPOConfig names; a run saved under the old ones still resumes.
OLD_NAMES = {"group_size": "num_generations", "inner_steps": "num_iterations", "clip": "epsilon", "kl_beta": "beta"}

# Free to change when resuming: they do not shape the trajectory (the learning rate is constant).
RESUME_FREE = ("out", "resume", "progress", "tensorboard", "device", "steps", "max_minutes", "val_problems", "val_size",
               "val_every", "save_every", "keep_checkpoints", "server_url", "server_model")


def check_config(c: GRPOConfig) -> None:
    positive = {name: getattr(c, name) for name in (
        "val_size", "prompts_per_step", "steps", "num_iterations", "lr", "max_grad_norm", "tokens_per_batch",
        "max_tokens", "max_slots", "val_every", "save_every", "keep_checkpoints")}
    bad = [k for k, v in positive.items() if v <= 0]
    if bad:
        raise GRPOConfigError(f"must be positive: {', '.join(bad)}")
    if c.num_generations < 2:
        raise GRPOConfigError(f"num_generations must be >= 2 (advantages compare rollouts of a prompt), got {c.num_generations}")
    if not 0 < c.temperature <= 2:
        raise GRPOConfigError(f"temperature must be in (0, 2], got {c.temperature}")
    if c.backend == "server" and c.temperature != 1.0:
        raise GRPOConfigError("the server backend samples at temperature 1 only: servers return raw log-probs, "
                              "not the tempered ones a lower temperature needs")
    if c.join_samples == 1 or c.join_samples < 0:
        raise GRPOConfigError(f"join_samples must be 0 (off) or >= 2 (a group to compare), got {c.join_samples}")
    if c.join_weight < 0:
        raise GRPOConfigError(f"join_weight must be >= 0, got {c.join_weight}")
    if not 0 < c.epsilon < 1:
        raise GRPOConfigError(f"epsilon (the PPO clip) must be in (0, 1), got {c.epsilon}")
    if c.beta < 0 or c.weight_decay < 0:
        raise GRPOConfigError("beta and weight_decay must be >= 0")
    if c.max_minutes is not None and c.max_minutes <= 0:
        raise GRPOConfigError(f"max_minutes must be positive, got {c.max_minutes}")
    hardware = (*get_args(Precision), None)  # None: apr.precision.hardware_precision
    choices = {"advantage": ("std", "mean"), "precision": hardware, "rollout_dtype": hardware,
               "backend": ("embedded", "server")}
    for name, allowed in choices.items():
        if getattr(c, name) not in allowed:
            named = ", ".join(a for a in allowed if a is not None)
            raise GRPOConfigError(f"{name} must be one of {named}, got {getattr(c, name)!r}")
    if c.sub_call_budget is not None and c.sub_call_budget < 0:
        raise GRPOConfigError(f"sub_call_budget must be >= 0, got {c.sub_call_budget}")
    if c.backend == "server" and not c.server_url:
        raise GRPOConfigError("backend 'server' needs server_url (an OpenAI-compatible base URL)")
    for name in ("init_from", "problems") + (("val_problems",) if c.val_problems else ()):
        if not Path(getattr(c, name)).exists():
            raise GRPOConfigError(f"{name}: {getattr(c, name)} does not exist")
    if not (Path(c.init_from) / "config.json").is_file():
        raise GRPOConfigError(f"{c.init_from} is not a model checkpoint (no config.json)")


def run_settings(c: GRPOConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the interrupted one (paths made absolute)."""
    d = {k: v for k, v in asdict(c).items() if k not in RESUME_FREE}
    for name in ("init_from", "problems"):
        d[name] = str(Path(d[name]).resolve())
    d["betas"] = list(c.betas)
    return d
