"""The thread tree: segments in the paper's layout, flat round trips, and the paper's metrics."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from apr.countdown.problems import ProblemSpec, draw_candidate
from apr.countdown.search import AprSettings, apr_search
from apr.threads import Thread, critical_path, flatten, tree_metrics, unflatten


def demo(seed: int, depth: int = 2) -> Thread:
    p = draw_candidate(ProblemSpec(), seed, "threads", 0)
    return apr_search(list(p.nums), p.target, AprSettings(1 + seed % 10, 12, 0.9, depth), random.Random(seed))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_flat_and_nested_forms_round_trip(seed):
    root = demo(seed)
    again = unflatten(flatten(root))
    assert flatten(again) == flatten(root)
    assert again.context() == root.context()
    assert [t.id for t in again.walk()] == [t.id for t in root.walk()]
    assert Thread.from_dict(root.to_dict()).to_dict() == root.to_dict()


def hand_built() -> Thread:
    root = Thread("0", "P")
    root.add_span("gen", "aa", 2)
    root.add_span("spawn", "SS", 3)
    a, b = Thread("0.0", "pa", prompt_tokens=1), Thread("0.1", "pb", prompt_tokens=1)
    a.add_span("gen", "x", 10)
    b.add_span("gen", "y", 4)
    root.spawns.append([a, b])
    root.add_span("join", "J", 5)
    root.add_span("gen", "cc", 7)
    root.prompt_tokens = 1
    return root


def test_segments_follow_the_papers_main_calls_layout():
    root = hand_built()
    segs = root.segments()
    assert [(s.prompt, s.completion) for s in segs] == [("P", "aaSS"), ("PaaJ", "cc")]
    assert segs[1].inserted == [(3, 4)]
    assert root.context() == "PaaJcc"


def test_metrics_on_a_hand_built_tree():
    root = hand_built()
    assert critical_path(root) == (2 + 3 + 10 + 7, ["0", "0.0"])
    m = tree_metrics(root)
    # prompts 1+1+1, generated 2+3+10+4+7, join 5: the parent prefix before the join counts once.
    assert m.total_tokens == 3 + 26 + 5
    assert m.generated_tokens == 26
    assert m.sequential_tokens == 22
    # Root calls: P+aa+SS = 6 tokens, then P+aa+J+cc = 1+2+5+7 = 15.
    assert m.longest_context == 15
    assert (m.n_threads, m.n_spawns, m.children_per_spawn) == (3, 1, 2.0)


def test_unflatten_rejects_broken_trees():
    import pytest

    rows = flatten(hand_built())
    with pytest.raises(ValueError, match="unknown parent"):
        unflatten(rows[1:])
    with pytest.raises(ValueError, match="duplicate"):
        unflatten(rows + [rows[1]])
