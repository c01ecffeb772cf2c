"""The training and rollout precision default: bf16 only where the hardware computes in it."""

from __future__ import annotations

import pytest

from apr.precision import hardware_precision


@pytest.mark.parametrize("flags,expected", [({"avx512f", "amx_bf16"}, "bf16"), ({"avx512f", "avx512_bf16"}, "bf16"),
                                            ({"avx512f", "avx2"}, "fp32"), (set(), "fp32")])
def test_a_cpu_gets_bf16_only_with_bf16_instructions(monkeypatch, flags, expected):
    monkeypatch.setattr("apr.runtime.cpu.cpu_flags", lambda: frozenset(flags))
    assert hardware_precision(None, "cpu") == expected
    assert hardware_precision(None, "cuda") == "bf16"


def test_an_explicit_precision_always_wins(monkeypatch):
    monkeypatch.setattr("apr.runtime.cpu.cpu_flags", lambda: frozenset())
    assert hardware_precision("bf16", "cpu") == "bf16"
    assert hardware_precision("fp32", "cuda") == "fp32"
