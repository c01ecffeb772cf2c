"""Limits and the malformed-output policy, each case forced through a scripted model."""

from __future__ import annotations

import pytest

from apr import grammar as g
from apr.runtime.backend import SamplingParams
from apr.runtime.limits import Limits, classify, plan_spawn
from apr.countdown.verifier import verify_countdown
from apr.runtime.orchestrator import SolveConfig, solve
from apr.runtime.scripted import ScriptedBackend
from apr.threads import Thread

ROOT = g.apr_prompt(27, [22, 26, 31, 53])
SEARCH = ("\nExploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]\n"
          "Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31\n"
          "Exploring Operation: 53-26=27, Resulting Numbers: [22, 31, 27]\n"
          "Generated Node #0,1: 27:[22, 31, 27] Operation: 53-26=27\n")
WIN = ("\nExploring Operation: 31/31=1, Resulting Numbers: [26, 1]\n"
       "Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1\nMoving to Node #0,0,0\n"
       "Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']\n"
       "Exploring Operation: 26+1=27, Resulting Numbers: [27]\n27,27 equal: Goal Reached\n"
       "Moving to Node #0,0\nCurrent State: 27:[26, 31, 31], Operations: ['53-22=31']\n"
       "Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]\n"
       "Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1\nMoving to Node #0,0,0\n"
       "Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']\n"
       "Exploring Operation: 26+1=27, Resulting Numbers: [27]\n27,27 equal: Goal Reached")


def call(i: int, node: str, level: int = 1) -> str:
    return f"<Start Sub Search {i} at level {level}> Moving to Node #{node}\n"


def block(*lines: str) -> str:
    return f"{g.SPAWN_OPEN}\n{''.join(lines)}{g.SPAWN_CLOSE}\n"


def run(tok, root_text: str, child_text: str = "\nNo solution found.", after_join: str = "\nNo solution found.",
        limits: Limits = Limits(), **config) -> Thread:
    """Root writes ``root_text``; children write ``child_text``; a thread after a join writes ``after_join``."""

    def script(prompt, rng):
        if g.JOIN_CLOSE in prompt:
            return after_join
        return root_text if prompt == ROOT else child_text

    return solve(ROOT, ScriptedBackend(script, tok), SolveConfig(limits=limits, **config))


def join_of(thread: Thread, k: int = 0) -> list[g.ChildResult]:
    return g.parse_join([s for s in thread.spans if s.kind == "join"][k].text)


def test_a_well_formed_spawn_runs_children_and_joins_their_answers(tok):
    tree = run(tok, SEARCH + block(call(0, "0,0"), call(1, "0,1")), child_text=WIN, verify=verify_countdown)
    assert [c.prompt for c in tree.children] == [g.child_prompt_from_context(ROOT + SEARCH, n) for n in ("0,0", "0,1")]
    assert [r.path is not None for r in join_of(tree)] == [True, True]
    assert [c.meta["verified"] for c in tree.children] == [True, False]  # node #0,1 has other numbers
    assert tree.finish_reason == "eos" and tree.events == []
    assert [s.kind for s in tree.spans] == ["gen", "spawn", "join", "gen"]
    assert tree.context().endswith(g.JOIN_CLOSE + "\n" + "\nNo solution found.")


def test_malformed_lines_are_dropped_and_the_rest_run(tok):
    tree = run(tok, SEARCH + block(call(0, "0,0"), "<Start Sub Search one at level 1> Moving\n", call(1, "0,1")))
    assert len(tree.children) == 2
    assert any("dropped 1 malformed spawn line" in e for e in tree.events)


@pytest.mark.parametrize("text", [
    SEARCH + block("garbage\n", "more garbage\n"),  # nothing valid in the block
    SEARCH + call(0, "0,0") + g.SPAWN_CLOSE,  # a close marker without an open one
])
def test_a_spawn_with_nothing_to_run_ends_the_thread(tok, text):
    tree = run(tok, text)
    assert tree.finish_reason == "bad_spawn" and tree.children == []
    assert [s.kind for s in tree.spans] == ["gen"] and tree.spans[0].text.startswith(SEARCH)
    assert tree.events


def test_unknown_and_repeated_nodes(tok):
    tree = run(tok, SEARCH + block(call(0, "0,0"), call(1, "0,7"), call(2, "0,0")), child_text=WIN)
    assert [c.meta["node"] for c in tree.children] == ["0,0"]
    results = join_of(tree)
    assert [(r.call.index, r.path is not None) for r in results] == [(0, True), (1, False), (2, True)]
    assert any("#0,7" in e and "never generated" in e for e in tree.events)
    assert any("repeat a node" in e for e in tree.events)


def test_spawns_past_max_depth_are_answered_without_running(tok):
    root = run(tok, SEARCH + block(call(0, "0,0"), call(1, "0,1")), limits=Limits(max_depth=0))
    assert root.children == [] and [r.path for r in join_of(root)] == [None, None]
    assert any("refused" in e for e in root.events)
    child_spawns = "\nExploring Operation: 31/31=1, Resulting Numbers: [26, 1]\n" \
                   "Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1\n" + block(call(0, "0,0,0", 2))
    nested = run(tok, SEARCH + block(call(0, "0,0")), child_text=child_spawns, limits=Limits(max_depth=1))
    (child,) = nested.children
    assert child.children == [] and any("refused" in e for e in child.events)
    deeper = run(tok, SEARCH + block(call(0, "0,0")), child_text=child_spawns, limits=Limits(max_depth=2))
    assert [c.prompt.split("\n")[0] for c in deeper.children[0].children] == ["Moving to Node #0,0,0"]


@pytest.mark.parametrize("limits, ran, word", [(Limits(max_children=1), 1, "max_children"),
                                               (Limits(max_threads=2), 1, "max_threads")])
def test_width_limits(tok, limits, ran, word):
    tree = run(tok, SEARCH + block(call(0, "0,0"), call(1, "0,1")), child_text=WIN, limits=limits)
    assert len(tree.children) == ran
    assert [r.path is not None for r in join_of(tree)] == [True, False]
    assert any(word in e for e in tree.events)


def test_eos_inside_a_spawn_block_ends_the_thread_without_running_it(tok):
    tree = run(tok, SEARCH + g.SPAWN_OPEN + "\n" + call(0, "0,0"))
    assert tree.finish_reason == "eos" and tree.children == []
    assert any("unclosed spawn block" in e for e in tree.events)


def test_a_join_written_by_the_model_becomes_a_forced_spawn(tok):
    """As in the reference: cut at ``<Sub Searches>``, append ``<Calling Sub Searches>``, decode on."""
    calls = call(0, "0,0") + g.SPAWN_CLOSE

    def script(prompt, rng):
        if g.JOIN_CLOSE in prompt:
            return "\nNo solution found."
        if prompt.endswith(g.SPAWN_OPEN + "\n"):
            return calls
        return SEARCH + g.JOIN_OPEN + "\n<Goal Reached in Sub Search 0" if prompt == ROOT else "\nNo solution found."

    tree = solve(ROOT, ScriptedBackend(script, tok), SolveConfig())
    assert tree.spans[1].text == g.SPAWN_OPEN + "\n" + calls + "\n"
    assert len(tree.children) == 1 and tree.finish_reason == "eos"
    assert any("forced a spawn" in e for e in tree.events)
    assert g.JOIN_OPEN not in "".join(s.text for s in tree.spans if s.kind != "join")


def test_endless_output_is_bounded(tok):
    always_join = ScriptedBackend(lambda prompt, rng: SEARCH + g.JOIN_OPEN, tok)
    tree = solve(ROOT, always_join, SolveConfig(limits=Limits(max_spawns=3)))
    assert tree.finish_reason == "spawn_limit" and tree.children == [] and always_join.calls == 4
    respawn = block(call(0, "0,0"), call(1, "0,1"))
    tree = run(tok, SEARCH + respawn, after_join=respawn, limits=Limits(max_spawns=4, max_threads=7))
    assert tree.finish_reason == "spawn_limit"
    assert len(list(tree.walk())) == 7 and len(tree.spawns) == 4
    assert any("max_threads" in e for e in tree.events)


def test_the_token_budget_is_shared_and_never_exceeded(tok):
    long = "\n" + "Moving to Node #0,0\n" * 400
    tree = run(tok, SEARCH + block(call(0, "0,0"), call(1, "0,1")), child_text=long, after_join=long,
               limits=Limits(max_total_tokens=300))
    decoded = sum(c["new_tokens"] for t in tree.walk() for c in t.meta["calls"])
    assert decoded <= 300
    assert [c.finish_reason for c in tree.children] == ["budget", "budget"]
    assert tree.finish_reason == "budget"
    assert tree.meta["subtree_tokens"] == decoded


def test_backend_and_verifier_failures_stay_inside_their_thread(tok):
    def script(prompt, rng):
        if prompt == ROOT:
            return SEARCH + block(call(0, "0,0"), call(1, "0,1"))
        if "#0,1" in prompt.split("\n")[0]:
            raise ConnectionError("backend went away")
        return WIN if g.JOIN_CLOSE not in prompt else "\nNo solution found."

    def verify(prompt, path):
        raise ValueError("verifier bug")

    tree = solve(ROOT, ScriptedBackend(script, tok), SolveConfig(verify=verify))
    ok, failed = tree.children
    assert failed.finish_reason == "error" and "backend went away" in failed.events[0]
    assert ok.meta["verified"] is False and any("verifier error" in e for e in ok.events)
    assert [r.path is not None for r in join_of(tree)] == [True, False]
    assert tree.finish_reason == "eos"


def test_context_window_and_caller_stops(tok):
    backend = ScriptedBackend(lambda p, r: SEARCH, tok, context_length=10)
    assert solve(ROOT, backend, SolveConfig()).finish_reason == "context"
    tree = run(tok, SEARCH + "STOP here", sampling=SamplingParams(stop=("STOP",)))
    assert tree.finish_reason == "stop" and tree.spans[-1].text.endswith("STOP")


def test_classify_and_plan_are_pure_functions():
    assert classify("abc", "eos").kind == "end"
    assert classify(SEARCH + g.JOIN_OPEN, "stop").text == SEARCH + g.SPAWN_OPEN + "\n"
    spawn = classify(SEARCH + block(call(0, "0,0"))[:-1], "stop")
    assert (spawn.kind, spawn.text, spawn.block) == ("spawn", SEARCH, block(call(0, "0,0")))
    plan = plan_spawn(ROOT + SEARCH, block(call(0, "0,0"), call(1, "0,1")), depth=0, threads_left=10,
                      limits=Limits())
    assert list(plan.prompts) == ["0,0", "0,1"] and plan.events == []
    assert plan_spawn(ROOT + SEARCH, block("x\n"), depth=0, threads_left=10, limits=Limits()) is None
    with pytest.raises(ValueError):
        Limits(max_threads=0)


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.5), ("temperature", float("nan")), ("temperature", float("inf")), ("top_p", 0.0),
    ("top_p", 1.5), ("top_k", -1), ("top_k", 2.5), ("max_tokens", -1), ("seed", -1), ("seed", 2**64),
    ("stop", ("",)),
])
def test_sampling_params_refuse_values_the_sampler_cannot_use(field, value):
    with pytest.raises(ValueError, match=field if field != "stop" else "stop strings"):
        SamplingParams(**{field: value})
    assert SamplingParams(seed=2**64 - 1, top_k=10**30).seed == 2**64 - 1


def test_limits_refuse_a_non_positive_timeout_and_name_what_is_over_the_caps():
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="timeout_s"):
            Limits(timeout_s=bad)
    caps = Limits(max_threads=10, timeout_s=5.0)
    assert Limits(max_threads=10, timeout_s=5.0).over(caps) == []
    assert Limits(max_threads=11, timeout_s=6.0).over(caps) == ["max_threads=11 (at most 10)",
                                                                 "timeout_s=6.0 (at most 5.0)"]
