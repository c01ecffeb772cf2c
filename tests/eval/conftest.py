"""Fixtures: tiny random-weight checkpoints saved like trained ones, and a small problems file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apr.cli import _register, app
from apr.models.loading import build_model
from apr.tokenizer import save_tokenizer

_register()
PROBLEMS = [([22, 26, 31, 53], 27), ([1, 4, 6, 8], 10), ([3, 5, 7, 2], 24), ([9, 2, 4, 30], 48),
            ([12, 6, 5, 1], 16), ([8, 8, 3, 2], 14)]


def run(*args: str):
    """``apr eval ARGS`` in-process; ``.text`` is the output with rich's line wrapping undone."""
    result = CliRunner().invoke(app, ["eval", *args])
    result.text = " ".join(result.output.split())
    return result


def write_problems(path: Path, problems=PROBLEMS) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "nums": n, "target": t}) + "\n"
                            for i, (n, t) in enumerate(problems)))
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, tok) -> dict[str, Path]:
    """Two tiny checkpoints (tiny preset, 192-token context) with the files `apr train sft` writes."""
    root = tmp_path_factory.mktemp("models")
    task = {"counts": [4], "min_number": 1, "max_number": 99, "min_target": 10, "max_target": 100}
    out = {}
    for seed, fmt in enumerate(("apr", "sosp")):
        path = root / f"{fmt}-tiny"
        build_model("tiny", tok, context_length=192, seed=seed).save_pretrained(path)
        save_tokenizer(tok, path)
        (path / "apr_train.json").write_text(json.dumps({"step": 0, "config": {}, "task": task}))
        out[fmt] = path
    return out
