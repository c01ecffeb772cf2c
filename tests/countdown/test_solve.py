"""One problem solved end to end, judged by the strict verifier (``apr.countdown.solve``)."""

from __future__ import annotations

import random

from apr.cli.solve import recount
from apr.countdown.search import AprSettings, apr_search
from apr.countdown.solve import check_problem, expression, judge


def test_verified_steps_read_as_one_formula_using_every_input_once():
    assert expression(["53-31=22", "22/22=1", "26+1=27"]) == "26 + ((53 - 31) / 22) = 27"
    assert expression(["7+7=14", "7*14=98"]) == "7 * (7 + 7) = 98"


def test_an_answer_a_child_found_but_the_root_lost_is_named():
    """The root's text after the join is cut: its verdict fails, and the child that solved it is named."""
    nums, target = [22, 26, 31, 53], 27
    tree = apr_search(nums, target, AprSettings(beam_size=3, sub_beam_size=6), random.Random(0))
    problem = check_problem(nums, target)
    assert judge(problem, tree).verdict.ok and judge(problem, tree).lost_at_join is None
    solver = next(t.id for t in tree.walk() if t is not tree and "Goal Reached" in t.context())
    tree.spans[-1].text = "No solution found.\n"
    recount(tree, len)  # characters for tokens: to_dict reports metrics
    lost = judge(problem, tree)
    assert not lost.verdict.ok and lost.lost_at_join == solver and lost.to_dict()["lost_at_join"] == solver
