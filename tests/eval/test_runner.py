"""The runner on a solver-scripted model: real spawn/join trees scored right, resume after a kill."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from apr.countdown.problems import Problem
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.eval.load import Model
from apr.eval.metrics import score_tree
from apr.eval.runner import RecordFile, run_setting
from apr.eval.settings import Setting
from apr.eval.summary import summarize_setting
from apr.runtime.codec import TokenCodec
from apr.runtime.scripted import ScriptedBackend
from apr.threads import Thread, tree_metrics
from tests.eval.conftest import PROBLEMS

POOL = [Problem(tuple(n), t, f"p{i}") for i, (n, t) in enumerate(PROBLEMS)]


def solver_model(tok, fmt: str, problems=POOL) -> tuple[Model, dict[str, bool]]:
    """A "model" that writes the symbolic solver's demonstration for each prompt, and who solved what."""
    table, solved = {}, {}
    for p in problems:
        if fmt == "apr":
            demo = apr_search(list(p.nums), p.target, AprSettings(beam_size=2, sub_beam_size=2), random.Random(p.id))
            table |= {s.prompt: s.completion for t in demo.walk() for s in t.segments()}
            solved[p.id] = demo.meta["solved"]
        else:
            prompt = Setting("sosp").prompt(p)
            trace = sosp(list(p.nums), p.target, 2, random.Random(p.id))
            table[prompt] = trace[len(prompt):]
            solved[p.id] = "Goal Reached" in trace
    backend = ScriptedBackend(lambda prompt, rng: table[prompt], tok)
    return Model(fmt, backend, TokenCodec(tok), 4096, f"solver-{fmt}", {"model": f"solver-{fmt}"}), solved


def run(setting, model, store, done=None):
    done = store.open({"run": 1}) if done is None else done
    return asyncio.run(run_setting(setting, POOL, model, store, done, seed=0, concurrency=2, max_tokens=None))


@pytest.mark.parametrize("fmt", ["apr", "sosp"])
def test_solver_replays_are_scored_as_the_solver_did(tmp_path, tok, fmt):
    model, solved = solver_model(tok, fmt)
    setting = Setting(fmt)
    rows = run(setting, model, RecordFile(tmp_path, setting.name))
    assert [r["id"] for r in rows] == [p.id for p in POOL]
    assert {r["id"]: bool(r["correct"]) for r in rows} == solved and any(solved.values())
    if fmt == "apr":
        assert any(r["samples"][0]["n_threads"] > 1 for r in rows)  # real spawns and joins ran
    for row, problem in zip(rows, POOL):
        sample = row["samples"][0]
        tree = Thread.from_dict(sample["tree"])
        assert score_tree(tree, problem).to_dict() == {k: v for k, v in sample.items() if k not in ("sample", "tree")}
        m = tree_metrics(tree)
        assert (sample["total_tokens"], sample["sequential_tokens"]) == (m.total_tokens, m.sequential_tokens)
        if tree.spawns:
            assert sample["sequential_tokens"] < sample["generated_tokens"]
    summary = summarize_setting(setting, rows, 4096)
    assert summary["accuracy"] == sum(solved.values()) / len(POOL)


def test_a_killed_run_decodes_only_what_it_had_not_finished(tmp_path, tok):
    model, _ = solver_model(tok, "apr")
    setting = Setting("apr")
    full = run(setting, model, RecordFile(tmp_path / "a", setting.name))
    calls_per_problem = [sum(len(t["meta"]["calls"]) for t in _walk(r["samples"][0]["tree"])) for r in full]

    store = RecordFile(tmp_path / "b", setting.name)
    store.open({"run": 1})  # records what produced the results
    # What a kill leaves: two finished records and half of a third line.
    lines = [json.dumps(r) for r in full[:2]]
    store.partial.write_text("\n".join(lines) + "\n" + json.dumps(full[2])[:100])
    done = store.open({"run": 1})
    assert sorted(done) == ["p0", "p1"]
    model.backend.calls = 0
    resumed = run(setting, model, store, done)
    assert model.backend.calls == sum(calls_per_problem[2:])
    assert [r["samples"][0]["tree"]["spans"] for r in resumed] == [r["samples"][0]["tree"]["spans"] for r in full]
    assert store.path.exists() and not store.partial.exists()
    with pytest.raises(ValueError, match="different run"):
        store.open({"run": 2})
    assert store.open({"run": 2}, fresh=True) == {} and not store.path.exists()


def _walk(tree: dict):
    yield tree
    for group in tree.get("spawns", []):
        for child in group:
            yield from _walk(child)


def test_depth_two_apr_settings_let_children_spawn_and_are_named_apart():
    from apr.eval.settings import Setting, sweep

    paper, deep = sweep(["apr"], [0.0]), sweep(["apr"], [0.0], max_depth=2)
    assert paper[0].solve_config(0, 64).limits.max_depth == 1 and "max_depth" not in paper[0].to_dict()
    assert deep[0].solve_config(0, 64).limits.max_depth == 2 and deep[0].name == "apr-d2-t0"
    assert "depth 2" in deep[0].label
    with pytest.raises(ValueError, match="max_depth"):
        Setting("sosp", max_depth=2)
