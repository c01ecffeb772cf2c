"""The default torch thread count and the attention dtype follow the machine, read from the OS."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from apr.runtime import cpu
from apr.runtime.kv_cache import default_kv_dtype


def test_the_default_thread_count_leaves_busy_cores_alone(monkeypatch, tmp_path):
    """Measured: with one core busy, two decode threads ran 6x slower than one (docs/runtime.md)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    fake = tmp_path / "loadavg"
    monkeypatch.setattr(cpu, "LOADAVG", fake)
    # The fourth field counts runnable tasks, this process included; the load averages are ignored.
    for runnable, want in ((1, 8), (4, 5), (8, 1), (31, 1)):
        fake.write_text(f"7.90 7.00 6.00 {runnable}/300 12345\n")
        assert cpu.default_cpu_threads() == want


def test_a_momentary_blip_does_not_count_as_a_busy_core(monkeypatch):
    readings = iter(["0.0 0 0 5/9 1", "0.0 0 0 1/9 1", "0.0 0 0 1/9 1", "0.0 0 0 2/9 1", "0.0 0 0 1/9 1"])

    class Fake:
        def read_text(self):
            return next(readings)

    monkeypatch.setattr(cpu, "LOADAVG", Fake())
    assert cpu.busy_cores() == 0


@pytest.mark.skipif(not cpu.LOADAVG.exists(), reason="needs Linux's /proc/loadavg")
def test_a_spinning_process_shows_as_a_busy_core_at_once():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert cpu.busy_cores() >= 1
    finally:
        spinner.kill()


def test_attention_runs_in_fp32_for_half_precision_models_on_a_cpu_without_amx(monkeypatch):
    cpu_device = torch.device("cpu")
    monkeypatch.setattr("apr.runtime.kv_cache.cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert default_kv_dtype(torch.bfloat16, cpu_device) == torch.float32
    assert default_kv_dtype(torch.float32, cpu_device) == torch.float32
    monkeypatch.setattr("apr.runtime.kv_cache.cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert default_kv_dtype(torch.bfloat16, cpu_device) == torch.bfloat16
    assert default_kv_dtype(torch.bfloat16, torch.device("cuda")) == torch.bfloat16
