"""Which device the embedded engine runs on: ``--device`` in solve, serve and eval.

The engine follows its model's parameters (KV cache, masks and positions are made where the weights
are; sampling draws from per-sequence CPU generators and moves one number per row), so a device is
chosen once, when the checkpoint loads. ``auto`` takes CUDA when torch sees a GPU, else the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(name: str = "auto") -> "torch.device":
    """The torch device for ``--device`` (``cuda:1`` picks a GPU); a missing GPU is a clear error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", built without CUDA")
            raise ValueError(f"--device {name}: torch sees no CUDA GPU ({build}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: the engine runs on cpu or cuda")
    return device
