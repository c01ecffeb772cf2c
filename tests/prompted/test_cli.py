"""``apr ask`` end to end: a question, the A/B harness, and clean one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from apr.cli.ask import ask
from tests.prompted.scripted_server import DEMO_TASK, Rule, ScriptedServer, demo_rules

app = typer.Typer()
app.command()(ask)
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_ask_prints_the_tree_and_writes_json(server: ScriptedServer, url: str, tmp_path: Path) -> None:
    server.script(*[Rule(r.pattern, r.reply) for r in demo_rules()])  # the demo script, without sleeps
    out, page = tmp_path / "run.json", tmp_path / "run.html"
    result = invoke(DEMO_TASK, "--base-url", url, "--baseline", "--json", str(out), "--html", str(page))
    assert result.exit_code == 0, result.output
    assert {h.model for h in server.log} == {"scripted"}  # no --model: the name came from /v1/models
    assert "root/week" in result.output and "answer: 2^20" in result.output
    assert "speedup vs sequential" in result.output
    run = json.loads(out.read_text())
    assert run["answer"] == "2^20" and run["model"] == "scripted" and run["baseline"]["answer"] == "2^20"
    assert [c["id"] for c in run["tree"]["spawns"][0]] == ["root/week", "root/year", "root/pow"]
    # The baseline ran first (one call); the rest is the parallel run.
    assert run["total_tokens"] == sum(h.prompt_tokens + h.completion_tokens for h in server.log[1:])
    assert page.read_text().startswith("<!doctype html>") and "root/week" in page.read_text()


def test_eval_compares_sequential_and_parallel(server: ScriptedServer, url: str, tmp_path: Path) -> None:
    server.script(
        Rule(r"Reply with only a JSON list", '[{"id": "x", "task": "do x"}, {"id": "y", "task": "do y"}]'),
        Rule(r"Your subtask", "part"),
        Rule(r"Results of the subtasks", lambda p: "Answer: " + p.split("Q=")[1].split()[0]),
        Rule(r"Think step by step", lambda p: "it is " + p.split("Q=")[1].split()[0]),  # no Answer: line
    )
    questions = tmp_path / "qs.jsonl"
    questions.write_text('{"question": "Q=1 ?", "answer": 1}\n\n{"question": "Q=2 ?", "answer": "2"}\n'
                         '{"question": "Q=3 ?"}\n')
    out = tmp_path / "summary.json"
    result = invoke("--eval", str(questions), "--base-url", url, "--model", "scripted", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "[3/3]" in result.output and "mean critical-path tokens" in result.output
    summary = json.loads(out.read_text())
    assert summary["n"] == 3 and summary["mode"] == "parallel"
    assert summary["arms"]["sequential"]["accuracy"] == 0.0 and summary["arms"]["parallel"]["accuracy"] == 1.0
    assert summary["arms"]["sequential"]["accuracy_lenient"] == 1.0  # right, but not in the asked-for format
    assert summary["arms"]["parallel"]["graded"] == 2 and summary["arms"]["parallel"]["fallbacks"] == 0
    assert [r["parallel"]["answer"] for r in summary["records"]] == ["1", "2", "3"]
    assert summary["records"][2]["parallel"]["correct"] is None
    assert summary["speedup"] > 0


@pytest.mark.parametrize("lines, message", [
    ('{"question": "fine"}\n{"answer": 3}\n', "qs.jsonl:2: question: Field required"),
    ('{"question": "fine"}\nnot json\n', "qs.jsonl:2: Invalid JSON"),
    ("\n\n", "holds no questions"),
])
def test_a_bad_eval_file_is_one_clear_line(tmp_path: Path, dead_url: str, lines: str, message: str) -> None:
    questions = tmp_path / "qs.jsonl"
    questions.write_text(lines)
    result = invoke("--eval", str(questions), "--base-url", dead_url, "--model", "m")
    assert result.exit_code == 1 and message in result.output


def test_a_missing_eval_file_is_one_clear_line(tmp_path: Path, dead_url: str) -> None:
    result = invoke("--eval", str(tmp_path / "none.jsonl"), "--base-url", dead_url, "--model", "m")
    assert result.exit_code == 1 and "cannot read" in result.output


@pytest.mark.parametrize("model", [[], ["--model", "m"]])
def test_an_unreachable_server_is_one_clear_line(dead_url: str, model: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = invoke("2+2?", "--base-url", dead_url, "--retries", "0", "--json", str(out), *model)
    assert result.exit_code == 1 and f"cannot reach {dead_url}" in result.output
    failed = json.loads(out.read_text())  # --json is written on failure too
    assert failed["answer"] is None and "cannot reach" in failed["error"]


def test_a_server_with_several_models_needs_a_model_name(server: ScriptedServer, url: str) -> None:
    server.script(served=("big", "small"))
    result = invoke("2+2?", "--base-url", url)
    assert result.exit_code == 1
    assert f"name the model with --model or APR_MODEL; {url} serves: big, small" in result.output
    assert not server.log  # nothing was asked before the model was known


@pytest.mark.parametrize("args, message", [
    ([], "give either a QUESTION or --eval FILE"),
    (["q", "--extract", "re:("], "bad answer pattern"),
    (["q", "--max-threads", "0"], "max-threads"),
    (["--eval", "qs.jsonl", "--html", "t.html"], "--html shows one run's tree"),
])
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and message in result.output
