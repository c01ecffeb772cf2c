"""Limits on a problem's thread tree, and what the runtime does with malformed model output.

Model output is untrusted: a thread may write a broken spawn block, name nodes it never generated,
spawn where it may not, stop inside a block, write a join block itself, or spawn forever. Each
case has one rule here (the table is in ``docs/runtime.md``); the orchestrator applies the rules
and records every decision on the thread (``events``, ``finish_reason``). Nothing raises and
nothing can loop: every thread is bounded by tokens, spawns and wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from apr import grammar as g


@dataclass(frozen=True)
class Limits:
    max_children: int = 16  # children run per spawn; further calls are answered "No Solution"
    max_depth: int = 1  # spawn nesting: 1 = only the root spawns (the paper), 0 = no spawns
    max_threads: int = 128  # threads per problem, root included
    max_spawns: int = 8  # spawns (and forced spawns) per thread; one more ends the thread
    max_total_tokens: int = 131072  # decoded tokens per problem, all threads together
    timeout_s: float | None = None  # wall clock per problem

    def __post_init__(self) -> None:
        for name in ("max_children", "max_depth", "max_threads", "max_spawns", "max_total_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_threads < 1:
            raise ValueError("max_threads must count the root thread (>= 1)")
        if self.timeout_s is not None and not 0 < self.timeout_s < float("inf"):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {self.timeout_s}")

    def over(self, caps: Limits) -> list[str]:
        """The limits that ask for more than ``caps`` allow, as 'name=value (at most cap)'."""
        out = []
        for name in self.__dataclass_fields__:
            mine, cap = getattr(self, name), getattr(caps, name)
            if cap is not None and (mine is None or mine > cap):
                out.append(f"{name}={mine} (at most {cap})")
        return out


# The orchestrator decodes until one of these (plus the caller's own stop strings).
STOPS = (g.SPAWN_CLOSE, g.JOIN_OPEN)


@dataclass(frozen=True)
class Outcome:
    """What the text a thread wrote since its last span means."""

    kind: Literal["end", "spawn", "forced_spawn", "bad_spawn"]
    text: str  # "spawn": the text before the block; "forced_spawn": the text to continue from
    block: str = ""  # "spawn": the spawn block, newline included
    event: str | None = None


def classify(text: str, finish_reason: str) -> Outcome:
    """Read a finished generation: a spawn to run, a join the model wrote itself, or the end."""
    if finish_reason == "stop" and text.endswith(g.JOIN_OPEN):
        kept = text[: -len(g.JOIN_OPEN)]
        return Outcome("forced_spawn", kept + g.SPAWN_OPEN + "\n",
                       event=f"model wrote {g.JOIN_OPEN!r} itself: cut it and forced a spawn block (as the reference does)")
    if finish_reason == "stop" and text.endswith(g.SPAWN_CLOSE):
        split = g.find_spawn(text)
        if split is None:
            return Outcome("bad_spawn", text, event=f"{g.SPAWN_CLOSE!r} without an opening {g.SPAWN_OPEN!r}")
        return Outcome("spawn", split[0], split[1])
    event = None
    if text.rfind(g.SPAWN_OPEN) > text.rfind(g.SPAWN_CLOSE):
        event = f"{finish_reason} inside an unclosed spawn block: the block is kept as text and not run"
    return Outcome("end", text, event=event)


@dataclass
class SpawnPlan:
    """Which children of a spawn block run; every call is answered in the join, run or not."""

    calls: list[g.ChildCall]  # the block's valid calls, in the model's order
    prompts: dict[str, str] = field(default_factory=dict)  # node id -> child prompt, for those that run
    events: list[str] = field(default_factory=list)


def parse_calls(block: str) -> tuple[list[g.ChildCall], list[str]]:
    """The block's child calls; malformed lines are dropped (and reported), never fatal."""
    try:
        return g.parse_spawn(block), []
    except g.GrammarError:
        pass
    lines = block.strip("\n").split("\n")[1:-1]
    calls, bad = [], []
    for line in lines:
        try:
            calls += g.parse_spawn(f"{g.SPAWN_OPEN}\n{line}\n{g.SPAWN_CLOSE}")
        except g.GrammarError:
            bad.append(line)
    events = [f"dropped {len(bad)} malformed spawn line(s), first {bad[0][:80]!r}"] if bad else []
    return calls, events


def plan_spawn(context: str, block: str, *, depth: int, threads_left: int, limits: Limits) -> SpawnPlan | None:
    """Decide which children of ``block`` run; None when the block names no child at all.

    ``context`` is the parent's visible text before the block (child prompts are built from it),
    ``depth`` the parent's depth (root 0). Calls that do not run are answered "No Solution":
    past ``max_depth``, past ``max_children`` or the problem's ``max_threads``, and calls naming a
    node the parent never generated. A node named twice runs once and answers both calls.
    """
    calls, events = parse_calls(block)
    if not calls:
        return None
    plan = SpawnPlan(calls, events=events)
    if depth >= limits.max_depth:
        plan.events.append(f"spawn at depth {depth} refused (max_depth={limits.max_depth}): "
                           f"all {len(calls)} call(s) answered No Solution")
        return plan
    room = min(limits.max_children, threads_left)
    over, duplicates = 0, 0
    for call in calls:
        if call.node_id in plan.prompts:
            duplicates += 1
        elif len(plan.prompts) >= room:
            over += 1
        else:
            try:
                plan.prompts[call.node_id] = g.child_prompt_from_context(context, call.node_id)
            except g.GrammarError as e:
                plan.events.append(f"call {call.index}: {e}; answered No Solution")
    if duplicates:
        plan.events.append(f"{duplicates} call(s) repeat a node: each node runs once and answers all its calls")
    if over:
        which = "max_children" if room == limits.max_children else "max_threads"
        plan.events.append(f"{over} call(s) over {which} ({room} may run): answered No Solution")
    return plan
