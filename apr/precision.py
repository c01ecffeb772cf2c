"""The number formats weights run in or training autocasts to, by the one name every command uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16"]
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})  # Linux's names of the CPU instructions that compute in bf16
TORCH_NAMES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16"}


def torch_dtype(precision: Precision) -> "torch.dtype":
    """The torch dtype of a precision name (torch imported here: it is slow to import)."""
    import torch

    return getattr(torch, TORCH_NAMES[precision])


def hardware_precision(precision: Precision | None, device_type: str) -> Precision:
    """``precision`` if given, else bf16 where the hardware computes in it (a GPU; a CPU with AMX or
    AVX512-BF16) and fp32 elsewhere: there torch emulates bf16 products and runs several times slower
    than in fp32 (docs/training.md)."""
    if precision is not None:
        return precision
    from apr.runtime.cpu import cpu_flags

    return "bf16" if device_type != "cpu" or cpu_flags() & BF16_CPU_FLAGS else "fp32"
