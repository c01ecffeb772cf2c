"""Plan validation, answer extraction and voting, and the scheduler, without a server."""

from __future__ import annotations

import asyncio
import json

import pytest

from apr.prompted.answers import extractor, lenient, majority, normalize
from apr.prompted.orchestrator import AskConfig
from apr.prompted.plan import PlanError, parse_plan
from apr.prompted.schedule import run_dag


def _plan(*subtasks: tuple) -> str:
    return json.dumps([{"id": i, "task": f"do {i}", "depends_on": list(d)} for i, d in subtasks])


def test_plan_waves_follow_dependencies() -> None:
    plan = parse_plan(_plan(("c", ["a", "b"]), ("a", []), ("b", ["a"]), ("d", [])), max_subtasks=6)
    assert [[s.id for s in wave] for wave in plan.waves()] == [["a", "d"], ["b"], ["c"]]


def test_plan_tolerates_fences_prose_think_blocks_and_numeric_ids() -> None:
    text = '<think>maybe [1, 2]?</think>Here is the plan:\n```json\n[{"id": 1, "task": "x"}, ' \
           '{"id": 2, "task": "y", "depends_on": [1]}]\n```'
    plan = parse_plan(text, max_subtasks=6)
    assert plan.dependencies() == {"1": [], "2": ["1"]}


@pytest.mark.parametrize("text, reason", [
    ("I would rather not.", "no JSON list found"),
    ('[{"id": "a", "task": "x"},]', "not valid JSON"),
    ("[]", "at least 1 item"),
    ('[{"id": "a"}]', "element[0].task: Field required"),
    ('["a", "b"]', "element[0]: Input should be a valid dictionary"),
    (_plan(("a", ["b"]), ("b", ["a"]), ("c", [])), "dependency cycle among: a, b"),
    ('[{"id": "<short name>", "task": "x"}]', "id is the template's placeholder '<short name>'"),
    ('[{"id": "a", "task": "<self-contained instruction>"}]', "task is the template's placeholder"),
    ('{"subtasks": [{"id": "t1", "task": "t2"}, {"id": "t2", "task": "x y"}]}', "'t1' has no instruction, only 't2'"),
    (_plan(*[(str(i), []) for i in range(7)]), "7 subtasks, at most 6 allowed"),
])
def test_invalid_plans_say_why(text: str, reason: str) -> None:
    with pytest.raises(PlanError) as e:
        parse_plan(text, max_subtasks=6)
    assert reason in str(e.value)


def test_plans_with_one_obvious_fix_are_repaired_and_say_so() -> None:
    text = json.dumps([{"id": "a", "task": "x", "depends_on": ["a", "z", "<ids of subtasks whose results it needs>"]},
                       {"id": "a", "task": "y", "depends_on": ["a"]}])
    plan = parse_plan(text, max_subtasks=6)
    assert plan.dependencies() == {"a": [], "a-2": ["a"]}
    assert plan.repairs[0] == "renamed the repeated id 'a' to 'a-2'" and "on a, z, <ids" in plan.repairs[1]


def test_a_schema_constrained_object_is_a_plan() -> None:
    plan = parse_plan('{"subtasks": [{"id": "a", "task": "x", "depends_on": []}, '
                      '{"id": "b", "task": "y", "depends_on": ["a"]}]}', max_subtasks=6)
    assert plan.dependencies() == {"a": [], "b": ["a"]} and plan.repairs == []


@pytest.mark.parametrize("spec, text, expected", [
    ("answer", "work\nAnswer: 12\nmore\n**Final answer:** 13.", "13."),
    ("answer", "no answer line here", None),
    ("boxed", r"first \boxed{1}, then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    ("boxed", r"cut off \boxed{\frac{1}{2}", None),
    ("last-line", "a\nb  \n\n", "b"),
    (r"re:x\s*=\s*(\d+)", "x = 1, then x=22", "22"),
    (r"re:\d+", "1 and 22", "22"),
])
def test_answer_extraction(spec: str, text: str, expected: str | None) -> None:
    assert extractor(spec).find(text) == expected


@pytest.mark.parametrize("text, guess", [
    ("So 3 boxes of 12 make 36 apples in total.", "36"),
    ("It costs -1,250.5 dollars", "-1,250.5"),
    ("The capital is Paris\n\n", "The capital is Paris"),
    ("", None),
])
def test_a_lenient_guess_reads_replies_that_ignored_the_format(text: str, guess: str | None) -> None:
    assert lenient(text) == guess


def test_bad_answer_formats_are_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="unknown answer format"):
        extractor("json")
    with pytest.raises(ValueError, match="bad answer pattern"):
        extractor("re:(")


def test_normalize_and_majority() -> None:
    assert [normalize(a) for a in ["$1,234$", "42.0", " Paris. ", "**X  y**", "0.50"]] == \
        ["1234", "42", "paris", "x y", "0.5"]
    winner, tally = majority(["41", "42", None, "42.0", "41", "**42**"])
    assert winner == "42" and tally == {"42": 3, "41": 2}
    assert majority(["b", "a", "a", "b"])[0] == "b"  # a tie goes to the answer seen first
    assert majority([None, None]) == (None, {})


def test_run_dag_orders_by_dependencies_and_passes_only_declared_inputs() -> None:
    seen: dict[str, dict[str, str]] = {}
    finished: list[str] = []

    async def work(name: str, inputs: dict[str, str]) -> str:
        seen[name] = inputs
        await asyncio.sleep({"a": 0.05, "b": 0.0, "c": 0.0}[name])
        finished.append(name)
        return name.upper()

    results = asyncio.run(run_dag({"a": [], "b": [], "c": ["a"]}, work))
    assert results == {"a": "A", "b": "B", "c": "C"}
    assert seen == {"a": {}, "b": {}, "c": {"a": "A"}}
    assert finished.index("c") > finished.index("a")


def test_run_dag_cancels_the_rest_when_one_fails() -> None:
    cancelled: list[str] = []

    async def work(name: str, inputs: dict[str, str]) -> str:
        if name == "bad":
            raise RuntimeError("boom")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    async def go() -> None:
        with pytest.raises(RuntimeError, match="boom"):
            await run_dag({"slow": [], "bad": [], "after": ["slow"]}, work)

    asyncio.run(asyncio.wait_for(go(), timeout=2))
    assert cancelled == ["slow"]  # "after" never started: it was waiting on "slow"


@pytest.mark.parametrize("field, value, message", [
    ("max_threads", 0, "max_threads must be >= 1"),
    ("max_depth", 0, "max_depth must be >= 1"),
    ("token_budget", 0, "token_budget must be > 0"),
    ("extract", "xml", "unknown answer format"),
])
def test_ask_config_rejects_settings_that_cannot_run(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AskConfig(**{field: value})
