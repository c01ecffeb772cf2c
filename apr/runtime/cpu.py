"""How many CPU threads torch uses in this process (one setting, shared by every command).

Decoding is a string of small matrix products whose threads wait for each other at every one of
them: when another job holds a core, a thread that lands behind it stalls the whole step. So unless
the user says otherwise, a command takes the cores that are free when it starts (the core count less
the busy ones, at least one), not every core as torch would. docs/runtime.md has the
measurements behind this (``benchmarks/threads.py``).
"""

from __future__ import annotations

import functools
import os
import platform
import statistics
import time
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    """The first CPU's ``field`` in Linux's /proc/cpuinfo; None elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (what benchmarks print beside their numbers)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere); read once per process."""
    return frozenset((_cpuinfo("flags") or "").split())


LOADAVG = Path("/proc/loadavg")


def busy_cores(samples: int = 5) -> int:
    """Cores other jobs hold now: the tasks runnable besides this one (``/proc/loadavg``'s fourth field),
    the median of a few readings 10 ms apart. Not the load average, which also counts what this
    user's previous commands did in the last minutes and lags a job started seconds ago."""
    readings = []
    for i in range(samples):
        try:
            readings.append(int(LOADAVG.read_text().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):  # not Linux
            try:
                return round(os.getloadavg()[0])
            except OSError:
                return 0
        if i + 1 < samples:
            time.sleep(0.01)
    return max(0, statistics.median_low(readings))


def default_cpu_threads() -> int:
    """The cores not busy with other work right now (at least 1)."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, cores - busy_cores()))


def set_cpu_threads(threads: int | None) -> None:
    """Apply ``--cpu-threads``, else ``OMP_NUM_THREADS`` if set (torch reads it), else the default for
    the machine's current load. torch is imported here: importing it takes seconds."""
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    torch.set_num_threads(threads if threads is not None else default_cpu_threads())
