"""Which model a server or a solve run uses, and the embedded backend over it.

The default is the bundled APR model, shipped inside the package (``apr/assets/models/apr-cpu``;
``models/`` in a checkout links there), so ``apr serve`` and ``apr solve`` work from any directory
and from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from apr.precision import Precision

if TYPE_CHECKING:
    from apr.runtime.embedded import EmbeddedBackend

BUNDLED_MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
DEFAULT_MODEL = BUNDLED_MODELS / "apr-cpu"


def resolve_model(path: Path | None) -> Path:
    """The checkpoint directory to load: ``path``, its ``final/`` (a training run), or the bundled model."""
    if path is None:
        path = DEFAULT_MODEL
        if not _checkpoint(path):
            raise FileNotFoundError(f"the bundled APR model is missing ({path}): train one (docs/training.md) "
                                    "and put it there, or pass --model PATH (apr solve --symbolic needs no model)")
    found = _checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path} is not a model checkpoint (no config.json in it or in {path / 'final'})")
    return found


def _checkpoint(path: Path) -> Path | None:
    for candidate in (path, path / "final"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def load_backend(path: Path, max_slots: int, threads: int | None = None, device: str = "auto",
                 max_step_tokens: int | None = None, dtype: Precision = "fp32") -> EmbeddedBackend:
    """The checkpoint on ``device`` (``apr.runtime.device``) with weights in ``dtype``, with its own
    tokenizer if it ships one; ``max_step_tokens``: the engine's token budget per step (long prompts
    prefill in chunks).

    ``threads`` sets torch's CPU threads for the process; None: the default of ``apr.runtime.cpu``
    (the cores not busy with other work).
    """
    from apr.precision import torch_dtype
    from apr.runtime.cpu import set_cpu_threads
    from apr.runtime.embedded import EmbeddedBackend  # torch loads only once a model is really needed

    set_cpu_threads(threads)
    return EmbeddedBackend.from_checkpoint(path, max_slots=max_slots, device=device, max_step_tokens=max_step_tokens,
                                           dtype=torch_dtype(dtype))
