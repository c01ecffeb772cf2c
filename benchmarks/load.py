"""Busy neighbours for the thread benchmarks: processes that spin on a core while a measurement runs."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from typing import Iterator


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def spinning(n: int, settle: float = 0.0) -> Iterator[None]:
    """``n`` spinning processes, started ``settle`` seconds before the body runs (a job already running)."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for s in spinners:
        s.start()
    try:
        time.sleep(settle if spinners else 0)
        yield
    finally:
        for s in spinners:
            s.terminate()
