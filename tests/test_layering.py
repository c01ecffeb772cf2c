"""The package's layers import downward only: the runtime knows no task, and evaluation, RL and serving
know Countdown only through its task layer (``apr.countdown.task``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "apr"


def imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import in a folder of the package, function-level ones too."""
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [(path.name, node.module)] + [(path.name, f"{node.module}.{a.name}") for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(path.name, a.name) for a in node.names]
    return found


def test_the_runtime_imports_no_task_and_nothing_above_it():
    above = ("apr.countdown", "apr.eval", "apr.rl", "apr.serve", "apr.cli", "apr.train", "apr.data", "apr.prompted")
    bad = [(f, m) for f, m in imports("runtime") if m.startswith(above)]
    assert not bad, bad


@pytest.mark.parametrize("folder", ["eval", "rl", "serve"])
def test_evaluation_rl_and_serving_see_countdown_only_through_its_task_layer(folder):
    bad = [(f, m) for f, m in imports(folder)
           if m.startswith("apr.countdown") and m not in ("apr.countdown", "apr.countdown.task")
           and not m.startswith("apr.countdown.task.")]
    assert not bad, bad
