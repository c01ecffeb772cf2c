"""Render-then-parse round trips for every block of the trace grammar."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apr import grammar
from apr.grammar import ChildCall, ChildResult, GrammarError

node_ids = st.lists(st.integers(0, 14), min_size=1, max_size=4).map(lambda xs: ",".join(["0"] + [str(x) for x in xs]))
calls = st.lists(st.tuples(st.integers(1, 3), node_ids), min_size=1, max_size=12).map(
    lambda items: [ChildCall(i, level, node) for i, (level, node) in enumerate(items)])


@given(calls)
def test_spawn_blocks_round_trip(cs):
    block = grammar.render_spawn(cs)
    assert grammar.parse_spawn(block) == cs
    assert grammar.find_spawn("Generated Node #0,0: 1:[2, 3] Operation: 1+1=2\n" + block)[1] == block


@given(calls, st.data())
def test_join_blocks_round_trip(cs, data):
    results = []
    for c in cs:
        solved = data.draw(st.booleans())
        path = f"Moving to Node #{c.node_id}\nCurrent State: 5:[2, 3], Operations: []\n" \
               f"Exploring Operation: 2+3=5, Resulting Numbers: [5]\n5,5 equal: Goal Reached\n"
        results.append(ChildResult(c, path if solved else None))
    assert grammar.parse_join(grammar.render_join(results)) == results


@given(st.integers(1, 999), st.lists(st.integers(0, 10**6), min_size=1, max_size=6),
       st.lists(st.from_regex(r"\d{1,3}[+*/-]\d{1,3}=\d{1,4}", fullmatch=True), max_size=4),
       st.none() | st.integers(0, 4096))
def test_prompts_round_trip(target, nums, ops, budget):
    state = grammar.parse_prompt(grammar.apr_prompt(target, nums, ops, "0,1", budget))
    assert (state.target, state.nums, state.ops, state.node_id, state.budget) == (target, nums, ops, "0,1", budget)
    sosp = grammar.parse_prompt(grammar.sosp_prompt(target, nums, budget))
    assert (sosp.target, sosp.nums, sosp.node_id, sosp.budget) == (target, nums, None, budget)


@pytest.mark.parametrize("block,why", [
    ("<Calling Sub Searches>\n<End Calling Sub Searches>\n", "no children"),
    ("<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n", "must end"),
    ("<Calling Sub Searches>\n<Start Sub Search x at level 1> Moving to Node #0,0\n<End Calling Sub Searches>", "line 2"),
    ("Calling\n<End Calling Sub Searches>", "must start"),
])
def test_broken_spawn_blocks_say_why(block, why):
    with pytest.raises(GrammarError, match=why):
        grammar.parse_spawn(block)


def test_child_prompt_needs_a_generated_node():
    with pytest.raises(GrammarError, match="never generated"):
        grammar.child_prompt_from_context("Moving to Node #0\nCurrent State: 5:[2, 3], Operations: []\n", "0,4")


def test_find_spawn_ignores_text_without_a_complete_block():
    assert grammar.find_spawn("Exploring Operation: 2+3=5, Resulting Numbers: [5]\n") is None
    assert grammar.find_spawn("<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving") is None
