"""Metrics on hand-built trees with known answers: tokens, critical path, context windows, votes."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apr.eval.metrics import (SampleScore, answer_operations, capped, compare_paired, cons_at, cumulative_accuracy,
                              pass_at, score_tree, vote)
from apr.threads import Thread
from tests.eval.trees import ANSWER, PROBLEM, WRONG_PATH, apr_tree, sosp_tree


def test_apr_tree_tokens_critical_path_and_context():
    score = score_tree(apr_tree(), PROBLEM)
    assert score.correct and score.failure is None and score.answer == ANSWER
    # Every prompt, generation and join once: root 20+100+30+40+80, children 25+200 and 25+350.
    assert score.total_tokens == 270 + 225 + 375
    assert score.generated_tokens == 100 + 30 + 80 + 200 + 350
    # The root's own decoding (100+30+80) plus its slowest child (350), not the sum of the children.
    assert score.sequential_tokens == 210 + 350
    # Root: 20+100+30 before the join, then 20+100+40+80 = 240 (the spawn block leaves the context);
    # the long child needs 25+350 = 375, the largest window of any call.
    assert score.longest_context == 375
    assert (score.n_threads, score.n_spawns, score.children_per_spawn) == (3, 1, 2.0)
    assert score.latency_s == 4.0


def test_critical_path_follows_the_slowest_child_and_the_root_can_dominate_the_context():
    score = score_tree(apr_tree(root_tokens=(900, 30, 40, 500), child_tokens=(600, 10)), PROBLEM)
    assert score.sequential_tokens == 900 + 30 + 500 + 600
    assert score.longest_context == 20 + 900 + 40 + 500


def test_single_thread_trace_counts_and_wrong_or_missing_answers():
    ok = score_tree(sosp_tree(), PROBLEM)
    assert ok.correct and ok.answer == ANSWER
    assert (ok.total_tokens, ok.sequential_tokens, ok.longest_context) == (320, 300, 320)
    wrong = score_tree(sosp_tree(WRONG_PATH), PROBLEM)
    assert not wrong.correct and wrong.failure == "number_not_available" and wrong.answer == ("26+1=27",)
    none = score_tree(sosp_tree(""), PROBLEM)
    assert not none.correct and none.failure == "no_answer" and none.answer is None
    assert SampleScore.from_dict(wrong.to_dict()) == wrong


def test_child_goal_lines_in_the_join_are_not_the_roots_answer():
    root = apr_tree()
    root.spans.pop()  # the parent stopped right after the join: only children wrote goal lines
    score = score_tree(root, PROBLEM)
    assert not score.correct
    assert answer_operations(root.context()) is None  # one goal line (child 0's) is no restated path
    # ... but child 0 did solve it: the parent lost a verified answer at the join.
    assert score.solved_by_child and score_tree(apr_tree(), PROBLEM).solved_by_child
    assert not score_tree(sosp_tree(), PROBLEM).solved_by_child
    assert SampleScore.from_dict(score.to_dict()) == score
    old = score.to_dict()
    del old["solved_by_child"]  # results written before the field existed still load
    assert SampleScore.from_dict(old).solved_by_child is False


A, B = ("53-22=31", "31/31=1", "26+1=27"), ("26+1=27",)


def test_pass_at_n_is_the_unbiased_estimator():
    assert pass_at(1, 4, 1) == 0.25
    assert pass_at(2, 4, 1) == pytest.approx(1 - 3 / 6)
    assert pass_at(4, 4, 1) == 1.0 and pass_at(3, 4, 0) == 0.0 and pass_at(1, 4, 4) == 1.0
    with pytest.raises(ValueError):
        pass_at(5, 4, 1)


def test_cons_at_n_votes_over_answers_and_drops_samples_without_one():
    answers, correct = [A, B, B, None], [True, False, False, False]
    assert cons_at(1, answers, correct) == pytest.approx(1 / 4)
    # pairs: AB and AB' tie (1/2 each), A+none wins (1), the other three lose: 2/6
    assert cons_at(2, answers, correct) == pytest.approx(2 / 6)
    # triples: ABB' loses, AB+none and AB'+none tie, BB'+none loses: 1/4
    assert cons_at(3, answers, correct) == pytest.approx(1 / 4)
    assert cons_at(4, answers, correct) == 0.0  # B outvotes A 2:1
    assert all(cons_at(n, answers, correct) <= pass_at(n, 4, 1) for n in range(1, 5))
    assert vote([None, None], [False, False]) == 0.0
    assert vote([B, A, A], [False, True, True]) == 1.0


def test_cons_at_n_samples_subsets_when_there_are_too_many():
    answers = [A if i % 3 == 0 else B if i % 3 == 1 else None for i in range(16)]
    correct = [a == A for a in answers]
    exact = cons_at(8, answers, correct)  # C(16, 8) = 12,870 subsets
    assert abs(cons_at(8, answers, correct, max_subsets=3000, seed=1) - exact) < 0.03


def test_cumulative_accuracy_over_context_windows_and_capped_single_threads():
    scores = [score_tree(apr_tree(), PROBLEM),  # solved, needs 375
              score_tree(apr_tree(child_tokens=(200, 1500)), PROBLEM),  # solved, needs 1525
              score_tree(sosp_tree(WRONG_PATH, gen_tokens=100), PROBLEM),  # wrong: never counts
              score_tree(sosp_tree(gen_tokens=700), PROBLEM)]  # solved, needs 720
    assert cumulative_accuracy(scores, [256, 375, 720, 1024, 2048]) == [0.0, 0.25, 0.5, 0.5, 0.75]

    single = [score_tree(sosp_tree(gen_tokens=300, latency_s=3.0), PROBLEM),
              score_tree(sosp_tree(gen_tokens=600, latency_s=6.0), PROBLEM)]
    assert capped(single, 256) == {"cap": 256, "accuracy": 0.0, "sequential_tokens": 256.0,
                                   "latency_s": pytest.approx((3.0 * 256 / 300 + 6.0 * 256 / 600) / 2)}
    assert capped(single, 512) == {"cap": 512, "accuracy": 0.5, "sequential_tokens": (300 + 512) / 2,
                                   "latency_s": pytest.approx((3.0 + 6.0 * 512 / 600) / 2)}
    with pytest.raises(ValueError):
        capped(scores, 512)  # APR trees cannot be cut after the fact


def test_paired_comparison_counts_discordant_problems_and_the_exact_sign_test():
    a = {f"p{i}": i < 6 for i in range(20)}  # A solves p0..p5
    b = {f"p{i}": 2 <= i < 16 for i in range(20)}  # B solves p2..p15: 10 that A misses, 2 that A solves alone
    c = compare_paired(a, b)
    assert (c.n, c.correct_a, c.correct_b, c.only_a, c.only_b) == (20, 6, 14, 2, 10)
    assert c.difference == pytest.approx(0.4)
    assert c.p_value == pytest.approx(2 * (1 + 12 + 66) / 2 ** 12)  # P(X <= 2) for X ~ Bin(12, 1/2), two-sided
    assert compare_paired(a, a).p_value == 1.0 and compare_paired(a, a).standard_error == 0.0
    with pytest.raises(ValueError, match="different problems"):
        compare_paired(a, {**b, "extra": True})


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=60))
def test_paired_standard_error_is_that_of_the_per_problem_differences(verdicts):
    a = {str(i): x for i, (x, _) in enumerate(verdicts)}
    b = {str(i): y for i, (_, y) in enumerate(verdicts)}
    diffs = [int(y) - int(x) for x, y in verdicts]
    c = compare_paired(a, b)
    assert c.difference == pytest.approx(statistics.fmean(diffs))
    assert c.standard_error == pytest.approx(statistics.stdev(diffs) / len(diffs) ** 0.5, abs=1e-12)
    assert 0.0 < c.p_value <= 1.0


def test_arithmetic_errors_count_wrong_operation_lines_in_every_thread():
    from apr.eval.metrics import SampleScore, arithmetic_errors

    root = Thread(id="0", prompt="Current State: 10:[2, 3, 4], Operations: []")
    root.add_span("gen", "\nExploring Operation: 2+3=5, Resulting Numbers: [4, 5]\n"
                         "Exploring Operation: 4*5=21, Resulting Numbers: [21]\n21,10 unequal: No Solution\n")
    child = Thread(id="0.0", prompt="Current State: 10:[4, 5], Operations: ['2+3=5']")
    child.add_span("gen", "\nExploring Operation: 5/4=1, Resulting Numbers: [1]\n"
                          "Exploring Operation: 8/4=2, Resulting Numbers: [2]\n")
    root.spawns.append([child])
    assert arithmetic_errors(root) == (4, 2)  # 4*5 is not 21; 5/4 is not a whole number
    old = {"correct": False, "failure": "no_answer", "answer": None, "total_tokens": 1, "generated_tokens": 1,
           "sequential_tokens": 1, "longest_context": 1, "n_threads": 2, "n_spawns": 1, "children_per_spawn": 1.0,
           "latency_s": 0.0, "finish_reason": "eos", "tree": root.to_dict()}
    score = SampleScore.from_dict(old)  # a record from before the count existed is counted from its tree
    assert (score.operations, score.wrong_operations) == (4, 2)
