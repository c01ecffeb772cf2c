"""What every CLI command shares: clean error reporting, sensible defaults, and the options that
mean the same thing in several commands, defined once so they are spelled the same everywhere.
Older spellings stay accepted as aliases (``--threads``, ``--max-batch``, ``--base-url``...)."""

from __future__ import annotations

import dataclasses
import functools
import os
from enum import Enum
from pathlib import Path
from typing import Any, Callable, TypeVar, get_args

import typer
from rich.console import Console

from apr.precision import Precision as PrecisionName


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_err = Console(stderr=True)


def fail_cleanly(fn: F) -> F:
    """Turn expected failures (bad input, missing or corrupt files) into one clear line, exit 2.

    Bugs still raise with a traceback: they are ours to fix, not the user's.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
            _err.print(f"[bold red]error:[/] {e}", soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _err.print("[yellow]interrupted[/]: finished work is kept; run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def default_of(cls: type, name: str) -> Any:
    """A settings dataclass's default, so the CLI and the library never disagree."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def settings_from(cls: type[T], params: dict[str, Any], **overrides: Any) -> T:
    """A settings dataclass from a command's parameters of the same names (choices to their values,
    paths to strings), so each setting is spelled once in the command and once in the library;
    ``overrides`` sets the fields a command spells differently."""
    def plain(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: plain(v) for k, v in params.items() if k in names} | overrides)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)

def choices(name: str, literal: Any) -> type[Enum]:
    """A CLI choice type made from the library's ``Literal`` of allowed values, so the two never drift
    (``sub-calls`` is the member ``sub_calls``)."""
    return Enum(name, {value.replace("-", "_"): value for value in get_args(literal)}, type=str)  # type: ignore[return-value]


Precision = choices("Precision", PrecisionName)  # weights (inference) or autocast (training)


def cpu_threads_option() -> Any:
    return typer.Option(None, "--cpu-threads", "--threads", min=1,
                        help="torch CPU threads for this process; default: OMP_NUM_THREADS if set, else the cores "
                             "not busy with other work (apr/runtime/cpu.py).")


def device_option() -> Any:
    return typer.Option("auto", "--device", help="Embedded engine device: auto (CUDA if torch sees a GPU, else "
                        "CPU), cpu, cuda or cuda:N.")


HARDWARE_PRECISION = "bf16 on a GPU or a CPU with AMX or AVX512-BF16, else fp32"


def dtype_option(default: str | None = None, *aliases: str, unset: str = "fp32") -> Any:
    """The embedded engine's weights (``--precision`` is a training run's autocast); ``unset``: what None means."""
    return typer.Option(default, "--dtype", *aliases, help="Embedded engine weights: fp32, or bf16 (for GPUs and CPUs "
                        "with AMX; elsewhere attention then runs in fp32)." + ("" if default else f" [default: {unset}]"))


def precision_option() -> Any:
    """A training run's autocast (None: ``apr.precision.hardware_precision``)."""
    return typer.Option(None, "--precision", help=f"Autocast: bf16 or fp32 (weights stay fp32). [default: "
                        f"{HARDWARE_PRECISION}]")


def max_slots_option(default: int = 32) -> Any:
    return typer.Option(default, "--max-slots", "--max-batch", min=1,
                        help="Embedded engine: sequences decoded together (KV cache rows); more wait for a free row.")


def backend_url_option(what: str = "the embedded engine") -> Any:
    return typer.Option(None, "--backend-url", "--base-url", "--server-url",
                        help=f"An OpenAI-compatible /v1 server (apr serve, vLLM, SGLang, llama.cpp) instead of {what}, "
                             "e.g. http://127.0.0.1:8000/v1.")


def served_model_name_option(*aliases: str, envvar: str | None = None) -> Any:
    return typer.Option(None, "--served-model-name", *aliases, envvar=envvar,
                        help="Model name on the server; default: its only model.")


def context_length_option(default: str = "what the server reports") -> Any:
    return typer.Option(None, "--context-length", min=2, help="A server's context window in tokens, for servers "
                        f"whose /v1/models does not report it (llama.cpp). [default: {default}]")


def progress_option() -> Any:
    return typer.Option(True, "--progress/--no-progress", help="Show progress bars.")


def tensorboard_option() -> Any:
    return typer.Option(False, "--tensorboard", help="Also log every metric to <out>/tensorboard "
                                                     "(needs the tensorboard package).")


