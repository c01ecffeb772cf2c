"""How many CPU threads torch uses in this process (one setting, shared by every command).

Decoding a small model is a string of tiny matrix products (a few microseconds each), where the
cost of waking and synchronising extra threads exceeds what they add, and on a machine shared with
other jobs threads that wait for each other can make every step many times slower. So unless the
user says otherwise, models below ``SMALL_MODEL`` parameters decode on one thread; larger ones get
torch's default (one per core). docs/runtime.md has the measurements behind the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

SMALL_MODEL = 30_000_000  # parameters, embeddings included


def estimated_parameters(checkpoint: Path) -> int | None:
    """The parameter count of a Llama checkpoint, from its config.json alone (None if unreadable)."""
    try:
        c = json.loads((Path(checkpoint) / "config.json").read_text())
        h, layers, inner, vocab = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
        kv = h * c.get("num_key_value_heads", c["num_attention_heads"]) // c["num_attention_heads"]
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inner
    return layers * per_layer + vocab * h * (1 if c.get("tie_word_embeddings") else 2)


def default_cpu_threads(checkpoint: Path | None) -> int | None:
    """One thread for a small checkpoint, None (torch's default) otherwise or when it is unknown."""
    n = estimated_parameters(checkpoint) if checkpoint is not None else None
    return 1 if n is not None and n < SMALL_MODEL else None


def set_cpu_threads(threads: int | None, checkpoint: Path | None = None) -> None:
    """Apply ``--cpu-threads``; without it, the default for ``checkpoint``'s size. torch is imported
    here: importing it takes seconds."""
    threads = threads if threads is not None else default_cpu_threads(checkpoint)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
