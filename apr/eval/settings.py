"""What one evaluation run sweeps: settings (format x conditioning x cap x samples x temperature).

A setting is everything that changes the model's samples for a problem; its name is the stem of
its output files, so a resumed run finds its own records again. Run-wide knobs (seed, concurrency,
models) live in ``EvalConfig``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from apr.countdown.task import Problem
from apr.runtime.backend import SamplingParams
from apr.runtime.limits import Limits
from apr.runtime.orchestrator import SolveConfig

Format = Literal["apr", "sosp"]
DEFAULT_MAX_CHILDREN = Limits().max_children


@dataclass(frozen=True)
class Setting:
    fmt: Format
    temperature: float = 0.0
    samples: int = 1  # per problem, for pass@n / cons@n
    budget: int | None = None  # prompt conditioning: Sub Call Budget (APR) or Token Budget (SoS+)
    max_children: int | None = None  # APR only: children the runtime runs per spawn (others: No Solution)
    max_depth: int = 1  # APR only: spawn nesting the runtime allows (1: only the root spawns, the paper)

    def __post_init__(self) -> None:
        if self.fmt not in ("apr", "sosp"):
            raise ValueError(f"format must be apr or sosp, got {self.fmt!r}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"a budget must be >= 0, got {self.budget}")
        if self.max_children is not None and (self.fmt != "apr" or self.max_children < 0):
            raise ValueError("max_children is a non-negative cap on APR children")
        if self.max_depth < 1 or (self.fmt != "apr" and self.max_depth != 1):
            raise ValueError("max_depth is an APR setting, at least 1")

    @property
    def name(self) -> str:
        parts = [self.fmt]
        if self.budget is not None:
            parts.append(f"{'scb' if self.fmt == 'apr' else 'tb'}{self.budget}")
        if self.max_children is not None:
            parts.append(f"max{self.max_children}")
        if self.max_depth != 1:
            parts.append(f"d{self.max_depth}")
        if self.samples > 1:
            parts.append(f"n{self.samples}")
        parts.append(f"t{self.temperature:g}")
        return "-".join(parts)

    @property
    def label(self) -> str:
        """Legend text: what a reader needs to tell the settings apart."""
        head = "APR" if self.fmt == "apr" else "SoS+"
        bits = []
        if self.budget is not None:
            bits.append(f"{'Sub Call' if self.fmt == 'apr' else 'Token'} Budget {self.budget}")
        if self.max_children is not None:
            bits.append(f"child cap {self.max_children}")
        if self.max_depth != 1:
            bits.append(f"depth {self.max_depth}")
        if self.samples > 1:
            bits.append(f"{self.samples} samples")
        bits.append(f"T={self.temperature:g}")
        return f"{head} ({', '.join(bits)})"

    def prompt(self, problem: Problem) -> str:
        return problem.prompt(self.fmt, self.budget)

    def solve_config(self, seed: int, max_tokens: int) -> SolveConfig:
        """SoS+ never spawns (max_depth 0); APR spawns to ``max_depth`` (the paper: 1, the root only)."""
        limits = Limits(max_depth=self.max_depth if self.fmt == "apr" else 0,
                        max_children=DEFAULT_MAX_CHILDREN if self.max_children is None else self.max_children)
        return SolveConfig(sampling=SamplingParams(temperature=self.temperature, max_tokens=max_tokens, seed=seed),
                           limits=limits)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"name": self.name}
        if self.max_depth == 1:  # records written before max_depth existed stay resumable
            del d["max_depth"]
        return d


def sweep(formats: Sequence[Format], temperatures: Sequence[float], sub_call_budgets: Sequence[int] = (),
          max_children: Sequence[int] = (), token_budgets: Sequence[int] = (),
          sosp_samples: Sequence[int] = (1,), max_depth: int = 1) -> list[Setting]:
    """Every setting of a sweep: unconditioned runs always, plus one per budget / cap / sample count."""
    out: list[Setting] = []
    for t in temperatures:
        if "apr" in formats:
            out.append(Setting("apr", t, max_depth=max_depth))
            out += [Setting("apr", t, budget=b, max_depth=max_depth) for b in sub_call_budgets]
            out += [Setting("apr", t, max_children=c, max_depth=max_depth) for c in max_children]
        if "sosp" in formats:
            for n in sosp_samples:
                out += [Setting("sosp", t, samples=n, budget=b) for b in [None, *token_budgets]]
    names = [s.name for s in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"the sweep lists these settings twice: {', '.join(repeated)}")
    return out


@dataclass(frozen=True)
class EvalConfig:
    problems: Path
    out: Path
    settings: tuple[Setting, ...]
    models: dict[str, str] = field(default_factory=dict)  # format -> checkpoint dir (or served model name)
    backend_url: str | None = None  # an OpenAI-compatible server instead of the embedded engine
    tokenizer: str | None = None  # None: the checkpoint's own, else the bundled one
    context_length: int | None = None  # served models: the server's window (default: the checkpoint's)
    limit: int | None = None  # the first N problems of the file
    seed: int = 0
    concurrency: int = 1  # problems in flight; all samples of a problem run together
    max_batch: int = 32  # embedded engine: sequences decoded per step
    dtype: str = "float32"  # embedded engine weights: float32 or bfloat16
    device: str = "auto"  # embedded engine device (apr.runtime.device)
    max_tokens: int | None = None  # per LM call; None: the model's context
    fresh: bool = False  # discard earlier results of these settings instead of resuming
    progress: bool = True  # progress bars (never part of what a resumed run must match)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_batch < 1:
            raise ValueError("concurrency and max_batch must be >= 1")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        missing = sorted({s.fmt for s in self.settings} - set(self.models))
        if missing:
            raise ValueError(f"settings need a model for: {', '.join(missing)} (give --{missing[0]})")
