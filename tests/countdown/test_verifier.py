"""The verifier accepts every solver answer and rejects each class of corrupted answer, naming it."""

import random
import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apr import grammar
from apr.countdown.problems import ProblemSpec, draw_candidate
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.countdown.verifier import Failure, verify_child, verify_path, verify_trace

EXPLORE = re.compile(r"^Exploring Operation: (\d+)([+\-*/])(\d+)=(\d+), Resulting Numbers: \[([\d, ]*)\]$")


def solved_answer(seed: int, n_numbers: int):
    """A solver answer path for a random problem, or None if that draw was not solved."""
    p = draw_candidate(ProblemSpec(n_numbers=n_numbers), seed, "verifier", 0)
    rng = random.Random(seed)
    if seed % 2:
        text = apr_search(list(p.nums), p.target, AprSettings(8, 12), rng).context()
    else:
        text = sosp(list(p.nums), p.target, 5, rng)
    path = grammar.answer_path(text)
    return (list(p.nums), p.target, text, path) if path else None


problem = st.builds(solved_answer, st.integers(0, 10**6), st.sampled_from([3, 4]))
cfg = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def explore_lines(path: str) -> list[int]:
    return [i for i, line in enumerate(path.split("\n")) if EXPLORE.match(line)]


def edit_line(path: str, index: int, fn) -> str:
    lines = path.split("\n")
    lines[index] = fn(lines[index])
    return "\n".join(lines)


@cfg
@given(problem)
def test_accepts_every_solver_answer(case):
    assume(case)
    nums, target, text, path = case
    verdict = verify_trace(text, nums, target)
    assert verdict.ok, verdict
    assert len(verdict.operations) == len(nums) - 1


@cfg
@given(problem, st.data())
def test_rejects_wrong_arithmetic(case, data):
    assume(case)
    nums, target, _, path = case
    i = data.draw(st.sampled_from(explore_lines(path)))
    bad = edit_line(path, i, lambda l: re.sub(r"=(\d+),", lambda m: f"={int(m.group(1)) + 1},", l))
    assert verify_path(bad, nums, target).failure is Failure.WRONG_ARITHMETIC


@cfg
@given(problem)
def test_rejects_subtraction_written_smaller_minus_larger(case):
    assume(case)
    nums, target, _, path = case
    i = next((i for i in explore_lines(path) if EXPLORE.match(path.split("\n")[i]).group(2) == "-"), None)
    assume(i is not None)
    m = EXPLORE.match(path.split("\n")[i])
    assume(m.group(1) != m.group(3))
    bad = edit_line(path, i, lambda l: l.replace(f"{m.group(1)}-{m.group(3)}=", f"{m.group(3)}-{m.group(1)}=", 1))
    verdict = verify_path(bad, nums, target)
    assert verdict.failure is Failure.WRONG_ARITHMETIC and "larger minus smaller" in verdict.detail


@cfg
@given(problem)
def test_rejects_a_number_that_is_not_available(case):
    assume(case)
    nums, target, _, path = case
    i = explore_lines(path)[0]
    bad = edit_line(path, i, lambda l: re.sub(r"Operation: (\d+)", "Operation: 1000003", l, count=1))
    assert verify_path(bad, nums, target).failure is Failure.NUMBER_NOT_AVAILABLE


@cfg
@given(problem)
def test_rejects_a_number_used_twice(case):
    assume(case)
    nums, target, _, path = case
    lines = path.split("\n")
    i = explore_lines(path)[0]
    a, op, b, c = EXPLORE.match(lines[i]).groups()[:4]
    # Repeating the first operation re-uses its operands, unless they are still on the board.
    assume(nums.count(int(a)) == 1 and nums.count(int(b)) == 1 and int(c) not in (int(a), int(b)) and a != b)
    bad = "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
    assert verify_path(bad, nums, target).failure is Failure.NUMBER_REUSED


def test_rejects_the_reference_sosp_verifier_hole():
    """The reference SoS+ check accepted 3*4=12 twice with 50 and 60 never used."""
    path = ("Moving to Node #0\nCurrent State: 12:[3, 4, 50, 60], Operations: []\n"
            "Exploring Operation: 3*4=12, Resulting Numbers: [50, 60, 12]\n"
            "Exploring Operation: 3*4=12, Resulting Numbers: [50, 60, 12, 12]\n12,12 equal: Goal Reached\n")
    verdict = verify_path(path, [3, 4, 50, 60], 12)
    assert verdict.failure is Failure.NUMBER_REUSED and verdict.line == 4
    short = path.split("Exploring")[0] + "Exploring Operation: 3*4=12, Resulting Numbers: [50, 60, 12]\n12,12 equal: Goal Reached\n"
    assert verify_path(short, [3, 4, 50, 60], 12).failure is Failure.INPUT_UNUSED


@cfg
@given(problem, st.data())
def test_rejects_unused_inputs(case, data):
    assume(case)
    nums, target, _, path = case
    lines = path.rstrip("\n").split("\n")
    ops = explore_lines(path)
    keep = data.draw(st.integers(0, len(ops) - 2))
    bad = "\n".join(lines[: ops[keep] + 1] + [lines[-1]]) + "\n"
    assert verify_path(bad, nums, target).failure is Failure.INPUT_UNUSED


@cfg
@given(problem)
def test_rejects_a_path_that_misses_the_target(case):
    assume(case)
    nums, target, _, path = case
    lines = path.rstrip("\n").split("\n")
    a, op, b, c, rest = EXPLORE.match(lines[-2]).groups()
    a, b = int(a), int(b)
    other = next((v for v in (a + b, a * b, max(a, b) - min(a, b)) if v != target), None)
    assume(other is not None)
    sym = "+" if other == a + b else "*" if other == a * b else "-"
    l, r = (max(a, b), min(a, b)) if sym == "-" else (a, b)
    lines[-2] = f"Exploring Operation: {l}{sym}{r}={other}, Resulting Numbers: [{other}]"
    lines[-1] = f"{other},{target} equal: Goal Reached"
    assert verify_path("\n".join(lines) + "\n", nums, target).failure is Failure.TARGET_NOT_REACHED


@cfg
@given(problem, st.data())
def test_rejects_misstated_resulting_numbers(case, data):
    assume(case)
    nums, target, _, path = case
    i = data.draw(st.sampled_from(explore_lines(path)))
    bad = edit_line(path, i, lambda l: l.replace("Resulting Numbers: [", "Resulting Numbers: [7777, ", 1))
    assert verify_path(bad, nums, target).failure is Failure.RESULT_MISMATCH


@cfg
@given(problem, st.data(), st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s))
def test_rejects_malformed_lines(case, data, junk):
    assume(case)
    nums, target, _, path = case
    assume(not junk.startswith(("Moving", "Current", "Generated", "Exploring")) and not junk[0].isdigit())
    lines = path.split("\n")
    i = data.draw(st.integers(1, len(lines) - 2))
    bad = "\n".join(lines[:i] + [junk] + lines[i:])
    assert verify_path(bad, nums, target).failure is Failure.MALFORMED_LINE


def test_a_trace_without_a_restated_path_has_no_answer():
    text = sosp([1, 1, 1, 1], 97, 3, random.Random(0))  # unsolvable: ends with "No solution found."
    assert verify_trace(text, [1, 1, 1, 1], 97).failure is Failure.NO_ANSWER
    assert "no_answer" in str(verify_trace("27,27 equal: Goal Reached\n", [27], 27))


def test_child_answers_are_verified_against_the_whole_problem():
    nums, target = [2, 20, 28], 18
    root = apr_search(nums, target, AprSettings(12, 15, p_spawn=1.0, canonical=True), random.Random(0))
    children = root.children
    verdicts = [verify_child(c.context(), nums, target) for c in children]
    solved = [c for c, v in zip(children, verdicts) if v]
    assert solved and all(v.operations[-1].endswith(f"={target}") for v in verdicts if v)
    # Children that end with "No solution found." give no answer; they are refused as such.
    assert {v.failure for v in verdicts if not v} <= {Failure.NO_ANSWER}
    good = solved[0].context()
    # An inherited operation the parent got wrong, or numbers that do not follow from it.
    first_op = grammar.parse_prompt(good).ops[0]
    left, rest = first_op.split("=")
    bad_inherited = good.replace(f"'{first_op}'", f"'{left}={int(rest) + 1}'", 1)
    assert verify_child(bad_inherited, nums, target).failure is Failure.WRONG_ARITHMETIC
    assert verify_child(good, [n + 1 for n in nums], target).failure in (Failure.NUMBER_NOT_AVAILABLE,
                                                                         Failure.RESULT_MISMATCH)
    # The child's own last operation miscomputed into the target.
    i = explore_lines(grammar.answer_path(good))[-1]
    path = grammar.answer_path(good)
    broken = good.replace(path, edit_line(path, i, lambda s: s.replace("Exploring Operation: ", "Exploring Operation: 1")))
    assert not verify_child(broken, nums, target)
    assert verify_child("not a prompt", nums, target).failure is Failure.MALFORMED_LINE
