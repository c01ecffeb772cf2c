"""The solvers write the paper's exact format, and every success they claim is verified."""

import random
import re
from pathlib import Path

import pytest

from apr import grammar
from apr.countdown.rules import combine
from apr.countdown.problems import ProblemSpec, draw_candidate
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.countdown.verifier import verify_path, verify_trace

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_sosp_reproduces_the_reference_trace_byte_for_byte():
    # Reference: sosp(27, [22,26,31,53], beam_size=2, heuristic=mult_heuristic) after random.seed(2).
    assert sosp([22, 26, 31, 53], 27, 2, random.Random(2)) == fixture("sosp_27_seed2_beam2.txt")


def test_apr_reproduces_the_reference_demonstration_byte_for_byte():
    # Reference: apr(27, [22,26,31,53], beam_size=2, sub_call_beam_size=2, promising_threshold=0.9) after seed(0).
    root = apr_search([22, 26, 31, 53], 27, AprSettings(2, 2, 0.9, 1), random.Random(0))
    main = [s.text for s in root.segments()]
    assert main == [fixture("apr_main0.txt"), fixture("apr_main1.txt")]
    assert [c.segments()[0].text for c in root.children] == [fixture("apr_child0.txt"), fixture("apr_child1.txt")]
    assert root.meta["solved"]


def test_reference_orchestration_rebuilds_the_parent_continuation_from_the_children():
    """From main_calls[0] and the child traces, the runtime's grammar rebuilds main_calls[1]'s prefix."""
    main0, main1 = fixture("apr_main0.txt"), fixture("apr_main1.txt")
    before, block = grammar.find_spawn(main0)
    calls = grammar.parse_spawn(block)
    children = [fixture("apr_child0.txt"), fixture("apr_child1.txt")]
    for call, child in zip(calls, children):
        assert child.startswith(grammar.child_prompt_from_context(before, call.node_id) + "\n")
    results = [grammar.ChildResult(c, grammar.answer_path(t)) for c, t in zip(calls, children)]
    rebuilt = before + grammar.render_join(results)
    assert main1.startswith(rebuilt)
    assert verify_trace(main1, [22, 26, 31, 53], 27).ok


def _problems(n_numbers: int, count: int, seed: int = 7):
    spec = ProblemSpec(n_numbers=n_numbers)
    return [draw_candidate(spec, seed, "test", i) for i in range(count)]


@pytest.mark.parametrize("n_numbers,count", [(3, 1500), (4, 1500)])
def test_every_claimed_sosp_success_is_verified(n_numbers, count):
    solved = 0
    for i, p in enumerate(_problems(n_numbers, count)):
        text = sosp(list(p.nums), p.target, 1 + i % 5, random.Random(i))
        verdict = verify_trace(text, list(p.nums), p.target)
        claims = text.rstrip("\n").split("\n")[-1] != grammar.NO_SOLUTION
        assert verdict.ok == claims, (p, verdict)
        solved += verdict.ok
    assert solved > count * 0.4  # the reference solver solves about half at 4 numbers


@pytest.mark.parametrize("n_numbers,depth", [(3, 1), (4, 1), (4, 2), (4, 3)])
def test_every_apr_success_is_verified_including_each_child(n_numbers, depth):
    nested = 0
    for i, p in enumerate(_problems(n_numbers, 800)):
        beam = 1 + i % 10
        root = apr_search(list(p.nums), p.target, AprSettings(beam, min(15, beam + i % 6), 0.9, depth), random.Random(i))
        assert verify_trace(root.context(), list(p.nums), p.target).ok == root.meta["solved"]
        ids = [t.id for t in root.walk()]
        assert len(ids) == len(set(ids))
        for thread in root.walk():
            assert thread.id.count(".") <= depth
            nested += thread.id.count(".") >= 2
            joins = [s for s in thread.spans if s.kind == "join"]
            assert len(joins) == len(thread.spawns)
            for span, children in zip(joins, thread.spawns):
                for result, child in zip(grammar.parse_join(span.text), children):
                    state = grammar.parse_prompt(child.prompt)
                    assert state.node_id == result.call.node_id
                    # A child reports a path only when it solved its sub-problem, from its own node.
                    assert (result.path is not None) == (grammar.answer_path(child.context()) is not None)
                    if result.path is not None:
                        assert result.path.startswith(f"Moving to Node #{result.call.node_id}\n")
                        assert verify_path(result.path, state.nums, p.target).ok
    assert (nested > 0) == (depth >= 2)


EXPLORE = re.compile(r"^Exploring Operation: (\d+)([-+*/])(\d+)=", re.M)


def _in_generation_order(nums: list[int], written: list[tuple[str, str, str]]) -> bool:
    """Whether ``written`` is a subsequence of ``combine``'s order: pairs left to right, then + * - /."""
    generated = iter([(str(op.left), op.op, str(op.right))
                      for i in range(len(nums)) for j in range(i + 1, len(nums)) for op in combine(nums[i], nums[j])])
    return all(any(op == cand for cand in generated) for op in written)


@pytest.mark.parametrize("seed", range(20))
def test_canonical_order_writes_the_same_expansion_in_generation_order(seed):
    p = _problems(3, 20, seed=11)[seed]
    nums, beam = list(p.nums), 1 + seed % 12
    shuffled = apr_search(nums, p.target, AprSettings(beam, beam, 1.0), random.Random(seed))
    canonical = apr_search(nums, p.target, AprSettings(beam, beam, 1.0, canonical=True), random.Random(seed))
    first = lambda t: re.split(r"<Calling Sub Searches>|\nMoving to Node", t.segments()[0].text)[0]
    ops_s, ops_c = EXPLORE.findall(first(shuffled)), EXPLORE.findall(first(canonical))
    assert sorted(ops_s) == sorted(ops_c)  # the same pruned successors (3 numbers: no goal at the root)
    assert _in_generation_order(nums, ops_c)
    if canonical.spawns:  # children spawned in node order: #0,0, #0,1, ...
        calls = grammar.parse_spawn(grammar.find_spawn(canonical.segments()[0].text)[1])
        ids = [int(c.node_id.split(",")[-1]) for c in calls]
        assert ids == sorted(ids)
    assert verify_trace(canonical.context(), nums, p.target).ok == canonical.meta["solved"]


def test_canonical_sosp_keeps_the_search_and_changes_only_the_order():
    for i, p in enumerate(_problems(3, 200, seed=5)):
        text = sosp(list(p.nums), p.target, 1 + i % 5, random.Random(i), canonical=True)
        claims = text.rstrip("\n").split("\n")[-1] != grammar.NO_SOLUTION
        assert verify_trace(text, list(p.nums), p.target).ok == claims
        blocks = text.split("Current State: ")[1:]
        for block in blocks:
            state = [int(x) for x in block.split("[", 1)[1].split("]", 1)[0].split(", ")]
            expansion = re.split(r"Goal Reached|Moving to Node|Start Sub Search", block)[0]
            assert _in_generation_order(state, EXPLORE.findall(expansion))
