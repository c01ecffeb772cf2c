"""A small sample of the runtime fuzzer (``apr/fuzz.py``): adversarial and random-model rollouts, every tree checked."""

from __future__ import annotations

import pytest

from apr.runtime.limits import Limits
from apr.runtime.orchestrator import SolveConfig, solve
from apr.runtime.scripted import ScriptedBackend
from tests.runtime.support import demonstration, replay

@pytest.fixture(scope="module")
def fuzzer():
    from apr import fuzz

    return fuzz


def test_fuzz_sample_has_no_violations(fuzzer):
    report = fuzzer.fuzz(rollouts=50, seed=1, model_share=0.2, batch=25)
    assert report.violations == []
    assert report.rollouts == 50 and report.threads > 50
    assert {"eos", "bad_spawn", "budget"} <= set(report.finish)
    assert {"model wrote '<Sub Searches>'", "dropped malformed spawn", "spawn block names no"} <= set(report.events)


def test_the_invariant_checker_catches_a_broken_tree(fuzzer, tok):
    demo = demonstration(3, beam_size=3, sub_beam_size=3)
    config = SolveConfig(limits=Limits(max_depth=1))
    tree = solve(demo.prompt, ScriptedBackend(replay(demo), tok), config)
    assert fuzzer.check_tree(tree, config) == []
    tree.children[0].finish_reason = "error"
    tree.spans[-1].n_tokens = None
    tree.children[1].prompt += " tampered"
    problems = fuzzer.check_tree(tree, config)
    assert any("finish reason 'error'" in p for p in problems)
    assert any("missing token counts" in p for p in problems)
    assert any("does not follow the parent's text" in p for p in problems)
