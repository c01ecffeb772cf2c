"""The README's promise from a wheel, not only a checkout: the wheel carries the bundled models and
``apr solve`` on the default model works from an installed wheel in any directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_installed_wheel_solves_with_its_bundled_model(tmp_path):
    source = tmp_path / "src"  # a copy, so the build leaves no build/ or egg-info in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "data"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("apr-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("apr-cpu", "sosp-cpu", "apr-grpo-cpu"):
        assert f"apr/assets/models/{model}/model.safetensors" in names, model

    venv = tmp_path / "venv"  # its own site-packages come before the editable checkout's
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run([str(venv / "bin" / "apr"), "solve", "42", "16", "7", "22", "--cpu-threads", "1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr[-2000:]  # 1: the model's answer failed the verifier
    assert str(venv) in "".join(run.stdout.split())  # the model inside the installed package (rich wraps lines)
    assert "critical path" in run.stdout
