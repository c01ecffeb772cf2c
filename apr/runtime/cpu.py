"""How many CPU threads torch uses in this process (one setting, shared by every command).

Decoding is a string of small matrix products whose threads wait for each other at every one of
them: when another job holds a core, a thread that lands behind it stalls the whole step. So unless
the user says otherwise, a command takes the cores that are free when it starts (the core count less
the 1-minute load average, at least one), not every core as torch would. docs/runtime.md has the
measurements behind this (``benchmarks/threads.py``).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (what benchmarks print beside their numbers)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_cpu_threads() -> int:
    """The cores not busy with other work right now (at least 1)."""
    cores = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))


def set_cpu_threads(threads: int | None) -> None:
    """Apply ``--cpu-threads``, else ``OMP_NUM_THREADS`` if set (torch reads it), else the default for
    the machine's current load. torch is imported here: importing it takes seconds."""
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    torch.set_num_threads(threads if threads is not None else default_cpu_threads())
