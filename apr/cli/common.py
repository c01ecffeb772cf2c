"""What every CLI command shares: clean error reporting and sensible defaults."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
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


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
