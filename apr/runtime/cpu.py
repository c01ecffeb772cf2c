"""How many CPU threads torch uses in this process (one setting, shared by every command)."""

from __future__ import annotations


def set_cpu_threads(threads: int | None) -> None:
    """Apply ``--cpu-threads`` (None: torch's default). torch is imported here: importing it takes seconds."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
