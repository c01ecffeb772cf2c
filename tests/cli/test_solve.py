"""``apr solve``: the symbolic solver, a tiny model in-process and over ``apr serve``, and clean bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from apr.cli import solve
from apr.serve.app import create_app
from apr.serve.loading import load_backend
from tests.loopback import Loopback
from tests.serve.models import save_random

app = typer.Typer()
app.command(context_settings=solve.CONTEXT)(solve.solve)
FIG1 = ["27", "22", "26", "31", "53"]  # target 27 from 22, 26, 31, 53 (the paper's Fig. 1)


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_random(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    """The runs below use --cpu-threads 1, which is process-wide: give the next tests their threads back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_symbolic_prints_the_tree_answer_and_metrics(tmp_path):
    out, page = tmp_path / "tree.json", tmp_path / "tree.html"
    r = invoke(*FIG1, "--symbolic", "--json", str(out), "--html", str(page))
    assert r.exit_code == 0, r.output
    assert "reach 27 from [22, 26, 31, 53]" in r.output and "symbolic APR solver" in r.output
    assert "spawn 1: 10 children" in r.output and "sequential tokens (critical path)" in r.output
    assert "critical path: 0 → 0." in r.output
    assert "answer: 26 + ((53 - 22) / 31) = 27" in r.output
    result = json.loads(out.read_text())
    assert result["verified"] and result["operations"] == ["53-22=31", "31/31=1", "26+1=27"]
    metrics = result["metrics"]
    assert metrics["n_threads"] == 11 and 0 < metrics["sequential_tokens"] < metrics["generated_tokens"]
    assert len(result["tree"]["spawns"][0]) == 10
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "thread 0.9" in html and "26 + ((53 - 22) / 31) = 27" in html


def test_symbolic_sub_call_budget_is_the_parent_beam(tmp_path):
    out = tmp_path / "tree.json"
    r = invoke(*FIG1, "--symbolic", "--sub-call-budget", "2", "--json", str(out))
    assert r.exit_code == 0, r.output
    assert len(json.loads(out.read_text())["tree"]["spawns"][0]) <= 2


def test_a_model_run_reports_tokens_timing_and_the_verifiers_reason(tiny, tmp_path):
    out = tmp_path / "run.json"
    r = invoke(*FIG1, "--model", str(tiny), "--sub-call-budget", "3", "--max-total-tokens", "40",
               "--cpu-threads", "1", "--json", str(out))
    assert r.exit_code == 1, r.output  # a random model finds no answer
    assert "embedded engine" in r.output and "threads (tokens; seconds since the start)" in r.output
    assert "no valid answer: no_answer: the trace does not restate a solution path" in r.output
    result = json.loads(out.read_text())
    assert result["prompt"].startswith("Sub Call Budget: 3 Moving to Node #0\nCurrent State: 27:[22, 26, 31, 53]")
    assert not result["verified"] and result["failure"] == "no_answer"
    assert 0 < result["metrics"]["generated_tokens"] <= 40 and result["metrics"]["wall_s"] > 0
    assert result["tree"]["finish_reason"] == "budget"


def test_backend_url_runs_against_apr_serve(tiny, tmp_path):
    out = tmp_path / "run.json"
    with Loopback(create_app(load_backend(tiny, max_slots=4, threads=1), "tiny")) as server:
        r = invoke(*FIG1, "--backend-url", server.url, "--max-total-tokens", "30", "--json", str(out))
    assert r.exit_code == 1, r.output
    assert f"tiny at {server.url}" in r.output
    result = json.loads(out.read_text())
    assert result["tree"]["spans"] and result["metrics"]["generated_tokens"] > 0  # counted by the tokenizer


@pytest.mark.parametrize("args,message", [
    (["27", "22", "x"], "not an integer: 'x'"),
    (["27", "22", "2.5", "3"], "not an integer: '2.5'"),
    (["27", "22", "-5", "3"], "numbers must be non-negative"),
    (["27", "22"], "give the target, then at least 2 numbers"),
    (["500", "1", "2"], "target must be in 10..100"),
    (["27", "1", "200"], "numbers must be in 1..99"),
    (["27", "1", "2", "--symbolic", "--model", "m"], "--symbolic runs no model"),
    (["27", "1", "2", "--model", "m", "--backend-url", "http://127.0.0.1:9/v1"], "exclude each other"),
    (["27", "1", "2", "--model", "no/such/dir"], "not a model checkpoint"),
    (["27", "1", "2", "--backend-url", "127.0.0.1:9"], "must start with http"),
    (["27", "1", "2", "--backend-url", "http://127.0.0.1:9/v1"], "cannot list the models of http://127.0.0.1:9/v1"),
])
def test_bad_input_is_one_clear_line(args, message):
    r = invoke(*args)
    assert r.exit_code == 2
    assert r.output.startswith("error: ") and r.output.count("error:") == 1  # one message, no usage dump
    assert message in " ".join(r.output.split())  # rich wraps long lines at the terminal's width


def _broken(tiny: Path, tmp: Path, how: str) -> Path:
    """A copy of the tiny checkpoint with one file broken as a failed copy or download leaves it."""
    import shutil

    path = tmp / how
    shutil.copytree(tiny, path)
    weights, config = path / "model.safetensors", path / "config.json"
    if how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif how == "no weights":
        weights.unlink()
    elif how == "corrupt config":
        config.write_text('{"model_type": "llama", ')
    elif how == "swapped tokens":  # same size and special ids, two ordinary tokens trade ids
        data = json.loads((path / "tokenizer.json").read_text())
        vocab = data["model"]["vocab"]
        a, b = list(vocab)[10:12]
        vocab[a], vocab[b] = vocab[b], vocab[a]
        (tmp / "other-tokenizer").mkdir()
        for f in path.glob("*token*"):
            shutil.copy(f, tmp / "other-tokenizer")
        (tmp / "other-tokenizer" / "tokenizer.json").write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("how,message", [
    ("truncated weights", "cannot load the checkpoint (Error while deserializing header"),
    ("no weights", "cannot load the checkpoint"),
    ("corrupt config", "is not a valid JSON file"),
])
def test_a_broken_checkpoint_is_one_clear_line(tiny, tmp_path, how, message):
    r = invoke("27", "1", "2", "--model", str(_broken(tiny, tmp_path, how)))
    assert r.exit_code == 2 and r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert message in r.output


def test_a_same_size_tokenizer_with_other_ids_is_refused(tiny, tmp_path):
    from apr.models.loading import load_model
    from apr.models.presets import ModelConfigError
    from apr.tokenizer import load_tokenizer

    path = _broken(tiny, tmp_path, "swapped tokens")
    with pytest.raises(ModelConfigError, match=r"2 token\(s\) have other ids"):
        load_model(path, load_tokenizer(tmp_path / "other-tokenizer"))
    load_model(path, load_tokenizer(path))  # its own tokenizer passes


def test_a_problem_outside_the_bundled_models_range_is_one_line_with_the_way_out():
    r = invoke(*FIG1)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "was trained on 3 numbers in 1..30, targets 10..60" in r.output and "(it has 4 numbers)" in r.output
    assert "--symbolic" in r.output and "--model" in r.output


def test_the_readme_demo_runs_the_bundled_model_and_verifies_its_answer(tmp_path):
    """`apr solve 42 16 7 22` with no --model: the README's main job, on the checked-in APR model."""
    result = invoke("42", "16", "7", "22", "--cpu-threads", "1", "--json", str(tmp_path / "tree.json"))
    assert result.exit_code == 0, result.output
    assert "models/apr-cpu" in result.output.replace("\n", "")
    assert "answer: 7 * (22 - 16) = 42" in result.output
    record = json.loads((tmp_path / "tree.json").read_text())
    assert record["verified"] is True and record["operations"] == ["22-16=6", "7*6=42"]
    assert len(record["tree"]["spawns"][0]) >= 2  # it forked: one child per first move


def test_a_server_that_does_not_report_its_window_needs_context_length(tmp_path):
    """llama.cpp's /v1/models has no max_model_len: guessing 4,096 against a 1,024 model would overrun it."""
    from fastapi import FastAPI

    quiet = FastAPI()

    @quiet.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x"}]}

    with Loopback(quiet) as server:
        r = invoke("27", "1", "2", "3", "--backend-url", server.url)
        assert r.exit_code == 2 and "does not report 'm''s context window: pass --context-length" in \
            " ".join(r.output.split())
