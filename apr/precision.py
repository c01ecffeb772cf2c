"""The number formats weights run in or training autocasts to, by the one name every command uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16"]
TORCH_NAMES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16"}


def torch_dtype(precision: Precision) -> "torch.dtype":
    """The torch dtype of a precision name (torch imported here: it is slow to import)."""
    import torch

    return getattr(torch, TORCH_NAMES[precision])
