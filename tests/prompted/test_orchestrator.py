"""Plan, fork, join, vote and every fallback, against a real HTTP server speaking the chat API."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Callable

import pytest

from apr.prompted.client import CallFailed, ChatClient, ClientConfig
from apr.prompted.orchestrator import Mode, Result, ask
from apr.threads import critical_path, tree_metrics
from tests.prompted.scripted_server import Rule, ScriptedServer

PLAN = r"Reply with only a JSON list"
MERGE = r"Results of the subtasks"
SEQUENTIAL = r"^(?!Overall problem).*\n\nThink step by step"  # the root answering in one call

Solve = Callable[..., Result]


def plan(*subtasks: tuple[str, list[str]]) -> str:
    return json.dumps([{"id": i, "task": f"work out {i}", "depends_on": d} for i, d in subtasks])


def subtask(sid: str, reply: str, **kw: object) -> Rule:
    return Rule(rf"Your subtask \({sid}\)", reply, **kw)


def test_plan_forks_concurrent_children_and_merge_joins_them(server: ScriptedServer, solve: Solve) -> None:
    server.script(
        Rule(PLAN, plan(("a", []), ("b", []), ("c", []))),
        subtask("a", "RES-A"), subtask("b", "RES-B"), subtask("c", "RES-C"),
        Rule(MERGE, "all three combined\nAnswer: 42"),
    )
    result = solve("TASK-1")
    root = result.tree
    assert result.answer == "42" and result.fallback is None
    assert [s.kind for s in root.spans] == ["spawn", "join", "gen"]
    assert [c.id for c in root.children] == ["root/a", "root/b", "root/c"]
    assert all(c.finish_reason == "stop" and c.prompt.startswith("Overall problem:\nTASK-1") for c in root.children)
    assert all(r in root.spans[1].text for r in ("RES-A", "RES-B", "RES-C"))
    assert len(server.hits(PLAN)) == 1  # max_depth 1: subtasks do not plan again
    # The tree's token counts are the server's usage numbers, call for call.
    m = tree_metrics(root)
    assert m.total_tokens == sum(h.prompt_tokens + h.completion_tokens for h in server.log)
    assert m.generated_tokens == sum(h.completion_tokens for h in server.log)
    assert m.sequential_tokens == root.generated_tokens() + 1  # each child wrote one token
    assert [call["purpose"] for call in root.meta["calls"]] == ["plan", "merge"]
    # Plan calls have their own, shorter token limit; subtasks and the merge get max_tokens.
    assert [h.max_tokens for h in server.hits(PLAN)] == [512]
    assert {h.max_tokens for h in server.hits(MERGE)} == {2048}


def test_a_reply_cut_at_max_tokens_or_without_usage_is_recorded_as_such(server: ScriptedServer,
                                                                         solve: Solve) -> None:
    words = [f"w{i}" for i in range(30)]
    server.script(Rule(PLAN, plan(("a", []), ("b", []))), subtask("a", " ".join(words)),
                  subtask("b", "b" * 40, usage=False), Rule(MERGE, "Answer: 9"))
    root = solve("TASK-0", max_tokens=20).tree  # the plan is shorter than 20 words
    a, b = root.children
    assert a.spans[0].text == " ".join(words[:20]) and a.finish_reason == "length"
    assert b.meta["calls"][0]["usage_estimated"] and b.spans[0].n_tokens == 10  # 40 characters / 4


def test_a_one_subtask_plan_is_plain_sequential_reasoning(server: ScriptedServer, solve: Solve) -> None:
    server.script(Rule(PLAN, plan(("all", []))), Rule(SEQUENTIAL, "one go\nAnswer: 7"))
    result = solve("TASK-2")
    assert result.answer == "7"
    assert [s.kind for s in result.tree.spans] == ["gen", "gen"] and result.tree.spawns == []
    assert [h.rule for h in server.log] == [0, 1]


def test_dependencies_order_the_subtasks_and_isolate_their_contexts(server: ScriptedServer, solve: Solve) -> None:
    server.script(
        Rule(PLAN, plan(("a", []), ("b", ["a"]), ("c", []))),
        subtask("a", "RES-A", delay=0.3), subtask("b", "RES-B"), subtask("c", "RES-C", delay=0.3),
        Rule(MERGE, "Answer: done"),
    )
    root = solve("TASK-3").tree
    a, b, c = (server.hits(rf"Your subtask \({x}\)")[0] for x in "abc")
    assert b.start >= a.end  # b waited for its dependency
    assert c.start < a.end  # c did not
    assert "RES-A" in b.prompt and "RES-C" not in b.prompt
    assert "RES-" not in a.prompt and "RES-" not in c.prompt
    assert [[t.id for t in group] for group in root.spawns] == [["root/a", "root/c"], ["root/b"]]
    assert [s.kind for s in root.spans] == ["spawn", "spawn", "join", "gen"]
    assert critical_path(root)[1] == ["root", "root/a", "root/b"]


@pytest.mark.parametrize("max_threads, expected_peak", [(4, 4), (2, 2)])
def test_subtasks_overlap_up_to_max_threads(server: ScriptedServer, solve: Solve,
                                            max_threads: int, expected_peak: int) -> None:
    server.script(Rule(PLAN, plan(*[(x, []) for x in "abcd"])),
                  Rule(r"Your subtask", "done", delay=0.5), Rule(MERGE, "Answer: 4"))
    start = time.monotonic()
    result = solve("TASK-4", max_threads=max_threads)
    elapsed = time.monotonic() - start
    assert result.answer == "4"
    assert server.peak == expected_peak
    waves = 4 // max_threads  # 4 subtasks of 0.5 s each would take 2 s one after the other
    assert 0.5 * waves <= elapsed < 0.5 * waves + 0.6
    assert all(c.meta["wall_s"] >= 0.5 for c in result.tree.children)


def test_a_malformed_plan_is_retried_with_the_validation_error(server: ScriptedServer, solve: Solve) -> None:
    server.script(
        Rule(PLAN, '[{"id": "a", "task": "x"', uses=1),
        Rule(r"That plan is invalid", plan(("a", []), ("b", []))),
        Rule(r"Your subtask", "ok"), Rule(MERGE, "Answer: fixed"),
    )
    result = solve("TASK-5")
    retry = server.hits(r"That plan is invalid")
    assert len(retry) == 1 and "not valid JSON" in retry[0].prompt
    assert retry[0].messages[-2] == {"role": "assistant", "content": '[{"id": "a", "task": "x"'}
    assert result.answer == "fixed" and result.fallback is None
    assert [s.kind for s in result.tree.spans] == ["gen", "spawn", "join", "gen"]
    assert any("invalid plan" in e for e in result.tree.events)


def test_plans_are_constrained_by_the_first_format_the_server_takes(server: ScriptedServer, solve: Solve) -> None:
    server.script(Rule(PLAN, '{"subtasks": [{"id": "a", "task": "x", "depends_on": ["a"]}, '
                             '{"id": "b", "task": "y", "depends_on": ["a"]}]}', refuse_formats=("json_schema",)),
                  subtask("a", "RES-A"), subtask("b", "RES-B"), Rule(MERGE, "Answer: 7"))
    result = solve("TASK-5c")
    assert result.answer == "7" and result.fallback is None
    assert [h.response_format for h in server.hits(PLAN)] == ["json_schema", "json_object"]
    refused, taken = result.tree.meta["calls"][:2]
    assert refused["abandoned"] == "http" and taken["response_format"] == "json_object"
    assert any("refused response_format json_schema" in e for e in result.tree.events)
    assert any(e.startswith("plan repaired: dropped dependencies of 'a'") for e in result.tree.events)
    off = solve("TASK-5d", constrain_plan="off")
    assert server.hits(PLAN)[-1].response_format is None and off.answer == "7"


def test_a_merge_prompt_over_the_window_gets_shorter_results(server: ScriptedServer, solve: Solve) -> None:
    long = " ".join(["word"] * 400)  # cut to max_tokens=100 words by the server: 500 characters per result
    server.script(Rule(PLAN, plan(("a", []), ("b", []))), subtask("a", long), subtask("b", long),
                  Rule(MERGE, "Answer: 9"), window=400)
    result = solve("TASK-W", max_tokens=100)
    [merge] = server.hits(MERGE)
    assert result.answer == "9" and sum(len(m["content"]) for m in merge.messages) <= (400 - 100) * 3
    assert any("over the 400-token window: each result cut" in e for e in result.tree.events)


@pytest.mark.parametrize("bad_plan", [
    "Sure! Let me think about it.",
    plan(("a", ["b"]), ("b", ["a"])),
    '[{"id": "a", "task": "<self-contained instruction>", "depends_on": []}, {"id": "b", "task": "y"}]',
    plan(*[(str(i), []) for i in range(7)]),
])
def test_an_invalid_plan_twice_falls_back_to_sequential(server: ScriptedServer, solve: Solve, bad_plan: str) -> None:
    server.script(Rule(PLAN, bad_plan), Rule(r"That plan is invalid", bad_plan),
                  Rule(SEQUENTIAL, "Answer: 5"))
    result = solve("TASK-6")
    assert result.answer == "5" and result.fallback == "plan"
    assert [h.rule for h in server.log] == [0, 1, 2]
    assert result.tree.spawns == [] and "no valid plan" in result.tree.events[-1]


def test_a_timeout_abandons_the_fork_and_falls_back(server: ScriptedServer, solve: Solve) -> None:
    server.script(
        Rule(PLAN, plan(("a", []), ("b", []), ("c", ["b"]))),
        subtask("a", "RES-A"), subtask("b", "never", delay=5), subtask("c", "RES-C"),
        Rule(SEQUENTIAL, "Answer: slow but sure"),
    )
    start = time.monotonic()
    result = solve("TASK-7", timeout=0.5, retries=2)
    assert time.monotonic() - start < 2.0
    assert result.answer == "slow but sure" and result.fallback == "timeout"
    a, b, c = result.tree.children
    assert (a.finish_reason, b.finish_reason, c.finish_reason) == ("stop", "timeout", "cancelled")
    assert [call.get("abandoned") for call in b.meta["calls"]] == ["timeout"]  # recorded, not lost
    assert len(server.hits(r"Your subtask \(b\)")) == 1  # a timed-out call is never re-sent
    assert not server.hits(r"Your subtask \(c\)")
    assert "fell back" in result.tree.events[-1]
    assert [s.kind for s in result.tree.spans] == ["spawn", "spawn", "gen"]  # the abandoned fork stays


@pytest.mark.parametrize("rule, kind", [
    (subtask("b", "", status=500), "http"),
    (subtask("b", "", refusal="I can't help with that."), "refusal"),
    (subtask("b", "   "), "empty"),
])
def test_errors_in_a_subtask_fall_back(server: ScriptedServer, solve: Solve, rule: Rule, kind: str) -> None:
    server.script(Rule(PLAN, plan(("a", []), ("b", []))), subtask("a", "RES-A"), rule,
                  Rule(SEQUENTIAL, "Answer: fallback"))
    result = solve("TASK-8", retries=2)
    assert result.answer == "fallback" and result.fallback == kind
    assert len(server.hits(r"Your subtask \(b\)")) == 1  # none of these is retried
    assert result.tree.children[1].finish_reason == kind


def test_503_and_429_are_retried(server: ScriptedServer, solve: Solve) -> None:
    server.script(Rule(PLAN, "", status=503, uses=1), Rule(PLAN, "", status=429, uses=1),
                  Rule(PLAN, plan(("x", []))), Rule(SEQUENTIAL, "Answer: 3"))
    result = solve("TASK-9", retries=2)
    assert result.answer == "3" and result.fallback is None
    assert [h.rule for h in server.log] == [0, 1, 2, 3]


def test_token_budget_exhaustion_falls_back(server: ScriptedServer, solve: Solve) -> None:
    server.script(Rule(PLAN, plan(("a", []), ("b", []))), Rule(r"Your subtask", "ok"),
                  Rule(SEQUENTIAL, "Answer: cheap"))
    result = solve("TASK-10", token_budget=30)
    assert result.answer == "cheap" and result.fallback == "budget"
    assert server.log[0].max_tokens == 30  # the call was capped to what was left
    assert not server.hits(r"Your subtask")  # the plan alone spent the budget
    assert "token budget of 30 spent" in result.tree.events[-1]
    reasons = [c.finish_reason for c in result.tree.children]
    assert "budget" in reasons and set(reasons) <= {"budget", "cancelled"}


def test_time_budget_exhaustion_falls_back(server: ScriptedServer, solve: Solve) -> None:
    server.script(Rule(PLAN, plan(("a", []), ("b", []))), Rule(r"Your subtask", "late", delay=5),
                  Rule(SEQUENTIAL, "Answer: in time"))
    start = time.monotonic()
    result = solve("TASK-11", time_budget=0.6)
    assert time.monotonic() - start < 2.0
    assert result.answer == "in time" and result.fallback == "budget"
    assert "time budget of 0.6 s spent" in result.tree.events[-1]


def test_sequential_mode_is_one_call_and_has_no_fallback(server: ScriptedServer, solve: Solve) -> None:
    server.script(Rule(SEQUENTIAL, "step\nAnswer: 1"))
    result = solve("TASK-12", mode=Mode.sequential)
    assert result.answer == "1" and len(server.log) == 1
    server.script(Rule(SEQUENTIAL, "", status=500))
    with pytest.raises(CallFailed, match="HTTP 500"):
        solve("TASK-12", mode=Mode.sequential)


def test_an_unreachable_server_raises_once_the_fallback_fails_too(dead_url: str) -> None:
    async def go() -> Result:
        async with ChatClient(ClientConfig(model="m", base_url=dead_url, retries=1)) as c:
            return await ask("TASK-13", c)

    with pytest.raises(CallFailed, match=f"cannot reach {dead_url}") as e:
        asyncio.run(go())
    assert e.value.kind == "unreachable"


def test_vote_takes_the_majority_of_parallel_samples(server: ScriptedServer, solve: Solve) -> None:
    replies = itertools.cycle(["Answer: 42", "Answer: 41", "Answer: 42.0", "I am not sure.", "**Answer:** 42"])
    server.script(Rule(SEQUENTIAL, lambda _: next(replies), delay=0.3))
    start = time.monotonic()
    result = solve("TASK-14", mode=Mode.vote, votes=5, max_threads=5)
    assert time.monotonic() - start < 1.0 and server.peak == 5
    assert result.answer in ("42", "42.0") and result.text in ("Answer: 42", "Answer: 42.0", "**Answer:** 42")
    assert result.tree.meta["votes"] == {"42": 3, "41": 1}
    # Which sample got which reply depends on arrival order at the server.
    assert sorted(map(str, (c.meta["answer"] for c in result.tree.children))) == ["41", "42", "42", "42.0", "None"]
    assert [s.kind for s in result.tree.spans] == ["spawn", "join"]


def test_verification_replaces_a_result_the_checker_corrects(server: ScriptedServer, solve: Solve) -> None:
    server.script(
        Rule(r"Check the proposed result",
             lambda p: "VERDICT: incorrect\nRES-A-FIXED" if "RES-A" in p else "VERDICT: correct"),
        Rule(PLAN, plan(("a", []), ("b", []))), subtask("a", "RES-A"), subtask("b", "RES-B"),
        Rule(MERGE, "Answer: checked"),
    )
    result = solve("TASK-15", verify=True)
    a, b = result.tree.children
    assert (a.meta["verdict"], b.meta["verdict"]) == ("corrected", "correct")
    join = result.tree.spans[1].text
    assert "RES-A-FIXED" in join and "RES-B" in join
    assert [call["purpose"] for call in a.meta["calls"]] == ["answer", "verify"]


def test_subtasks_plan_again_below_max_depth(server: ScriptedServer, solve: Solve) -> None:
    server.script(
        subtask("a1", "RES-A1"), subtask("a2", "RES-A2"),
        Rule(r"(?s)Your subtask \(a\).*" + PLAN, plan(("a1", []), ("a2", []))),
        Rule(r"(?s)Your subtask \(b\).*" + PLAN, plan(("b", []))),
        Rule(r"(?s)Your subtask \(a\).*" + MERGE, "RES-A"),
        subtask("b", "RES-B"),
        Rule(PLAN, plan(("a", []), ("b", []))),
        Rule(MERGE, "Answer: nested"),
    )
    result = solve("TASK-16", max_depth=2)
    root = result.tree
    a, b = root.children
    assert result.answer == "nested"
    assert [c.id for c in a.children] == ["root/a/a1", "root/a/a2"] and b.spawns == []
    assert "RES-A1" in a.spans[1].text and "RES-A" in root.spans[1].text
    assert "TASK-16" in a.children[0].prompt  # a grandchild still sees the overall problem
    assert tree_metrics(root).n_threads == 5
