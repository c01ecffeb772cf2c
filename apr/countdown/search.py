"""Symbolic hybrid best-first / DFS search that writes demonstrations in the paper's format.

``sosp`` writes one serialized trace (SoS+): beam search whose expansions sometimes "double down"
into a depth-first sub search. ``apr_search`` writes a thread tree (APR): the parent delegates all
surviving successors of an expansion to child threads, which search from isolated prompts, and
continues from a join block holding only their results. Children may spawn too, to ``max_depth``.

Both consume a ``random.Random`` in the same order as the reference generator (shuffle after
pruning, one spawn/DFS draw per expansion), so with the same seed and settings they reproduce the
reference's traces byte for byte. Unlike the reference, the parent resumes with the correct next
node after a spawn whose children all fail (the reference reuses a shadowed loop index there).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Callable, Iterator

from apr import grammar as g
from apr.countdown.rules import combine
from apr.threads import Thread

_DISTANCE_TABLES: dict[int, list[int]] = {}


def _distance_table(target: int) -> list[int]:
    """Distance from each of 0..target to the nearest factor of ``target`` in 2..target."""
    table = _DISTANCE_TABLES.get(target)
    if table is None:
        factors = [f for f in range(2, target + 1) if target % f == 0] or [target]
        table = _DISTANCE_TABLES[target] = [min(abs(n - f) for f in factors) for n in range(target + 1)]
    return table


def mult_heuristic(nums: list[int], target: int) -> int:
    """Sum over numbers of the distance to the nearest factor of the target (2..target).

    This is the formula the reference generators actually use (the paper prints another one).
    Lower is better. Above the target the nearest factor is the target itself.
    """
    table = _distance_table(target)
    return sum(table[n] if n <= target else n - target for n in nums)


class Node:
    __slots__ = ("nums", "ops", "h", "id", "parent", "op")

    def __init__(self, nums: list[int], ops: list[str], h: int, parent: "Node | None", op: str | None):
        self.nums, self.ops, self.h, self.parent, self.op = nums, ops, h, parent, op
        self.id = "0"

    def __lt__(self, other: "Node") -> bool:  # heap ties behave exactly as in the reference
        return self.h < other.h


def _expand(node: Node, target: int, beam: int, rng: random.Random, canonical: bool = False) -> list[Node]:
    """All successors, pruned to the ``beam`` best (stable on ties), then shuffled (the reference).

    ``canonical`` writes the survivors in generation order (pairs left to right, then + - * /)
    instead: a small model learns to enumerate them far more easily than a random order.
    Scores every successor first and builds nodes only for the survivors: most are pruned.
    """
    nums = node.nums
    n = len(nums)
    table = _distance_table(target)
    scored = []
    for i in range(n):
        for j in range(i + 1, n):
            rest = [nums[k] for k in range(n) if k != i and k != j]
            base = sum(table[x] if x <= target else x - target for x in rest)
            for op in combine(nums[i], nums[j]):
                r = op.result
                scored.append((base + (table[r] if r <= target else r - target), len(scored), rest, op))
    scored.sort()  # (score, generation order): a stable sort by score
    survivors = scored[:beam]
    if canonical:
        survivors.sort(key=lambda s: s[1])
    kids = [Node(rest + [op.result], node.ops + [f"{op.left}{op.op}{op.right}={op.result}"], h, node, None)
            for h, _, rest, op in survivors]
    if not canonical:
        rng.shuffle(kids)
    return kids


def _by_h(node: Node) -> int:
    return node.h


def path_lines(goal: Node, start: Node, target: int) -> list[str]:
    """The summary path from ``start`` to the goal node, ending with the goal line."""
    chain = [goal]
    while chain[-1] is not start:
        chain.append(chain[-1].parent)
    chain.reverse()
    lines = [g.move_line(start.id)]
    for node, nxt in zip(chain, chain[1:]):
        lines.append(g.state_line(target, node.nums, node.ops))
        lines.append(g.explore_line(nxt.ops[-1], nxt.nums))
        if len(nxt.nums) == 1:
            lines.append(g.goal_line(nxt.nums[0], target))
            return lines
        lines.append(g.generated_line(nxt.id, target, nxt.nums, nxt.ops[-1]))
        lines.append(g.move_line(nxt.id))
    raise AssertionError("goal node is not a leaf")


def _emit_children(node: Node, kids: list[Node], target: int, out: list[str],
                   canonical: bool = False) -> tuple[Node | None, list[Node]]:
    """Write the Exploring/Generated/leaf lines of one expansion; return (goal, non-leaf kids).

    The kids come back best first (the reference), or in node order when ``canonical``.
    """
    k = 0
    explore: list[Node] = []
    prefix = node.id + ","
    for kid in kids:
        kid.id = prefix + str(k)
        nums = kid.nums
        op = kid.ops[-1]
        out.append(g.explore_line(op, nums))
        if len(nums) == 1:
            if nums[0] == target:
                out.append(g.goal_line(target, target))
                return kid, explore
            out.append(g.miss_line(nums[0], target))
        else:
            out.append(g.generated_line(kid.id, target, nums, op))
            k += 1
            explore.append(kid)
    if not canonical:
        explore.sort(key=_by_h)
    return None, explore


# -- SoS+ --------------------------------------------------------------------------------------
def sosp(nums: list[int], target: int, beam_size: int, rng: random.Random, p_dfs: float = 0.5,
         canonical: bool = False) -> str:
    """A SoS+ trace (text, starting with the ``Current State`` prompt line).

    ``canonical`` writes each expansion's successors in generation order (see ``_expand``); the
    search itself (what is pruned, what is explored first) is unchanged.
    """
    root = Node(list(nums), [], mult_heuristic(nums, target), None, None)
    out: list[str] = []
    _sosp(root, root, target, beam_size, rng, p_dfs, 0, out, canonical)
    return "\n".join(out) + "\n"


def _best_first(open_set: list[tuple[int, Node]], beam: int, out: list[str]) -> Iterator[Node]:
    """The hybrid search's expansion order: rounds of up to ``beam`` nodes popped best first.

    Writes the ``Moving to Node`` line before each next node: within a round, the round's next
    node; after a round, the heap's best. Callers push successors onto ``open_set`` as they go.
    """
    while open_set:
        current = [heapq.heappop(open_set)[1] for _ in range(min(beam, len(open_set)))]
        for idx, node in enumerate(current):
            yield node
            if idx < len(current) - 1:
                out.append(g.move_line(current[idx + 1].id))
        if open_set:
            out.append(g.move_line(open_set[0][1].id))


def _sosp(start: Node, root: Node, target: int, beam: int, rng: random.Random, p: float, level: int,
          out: list[str], canonical: bool) -> bool:
    open_set = [(start.h, start)]
    for node in _best_first(open_set, beam, out):
        out.append(g.state_line(target, node.nums, node.ops))
        goal, explore = _emit_children(node, _expand(node, target, beam, rng, canonical), target, out)
        if goal is not None:
            out.extend(path_lines(goal, root, target))
            return True
        double_down = rng.random() < p
        for kid in explore:
            if double_down:
                out.append(f"Start Sub Search at level {level + 1}: {g.move_line(kid.id)}")
                found = _sosp(kid, root, target, beam, rng, p, level + 1, out, canonical)
                out.append(f"Exit Sub Search at level {level + 1}")
                if found:
                    return True
                out.append("No solution found in sub search")
            else:
                heapq.heappush(open_set, (kid.h, kid))
    out.append(g.NO_SOLUTION)
    return False


# -- APR ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AprSettings:
    beam_size: int
    sub_beam_size: int
    p_spawn: float = 0.9
    max_depth: int = 1  # the reference spawns only from the root (depth 1); we allow more
    canonical: bool = False  # successors written and spawned in node order, not shuffled (see _expand)


def apr_search(nums: list[int], target: int, settings: AprSettings, rng: random.Random) -> Thread:
    """An APR demonstration as a thread tree; ``meta['solved']`` says whether the root succeeded."""
    root = Node(list(nums), [], mult_heuristic(nums, target), None, None)
    thread, goal = _apr_thread(root, target, settings.beam_size, settings, rng, 0, "0")
    thread.meta["solved"] = goal is not None
    return thread


def _apr_thread(start: Node, target: int, beam: int, s: AprSettings, rng: random.Random, level: int,
                thread_id: str) -> tuple[Thread, Node | None]:
    thread = Thread(id=thread_id, prompt=g.apr_prompt(target, start.nums, start.ops, start.id))
    thread.meta["node"] = start.id
    # The prompt ends with the start node's state line and no newline, so the first generated
    # line starts with one (the empty first element); later spans start right after a join.
    out: list[str] = [""]

    def flush() -> None:
        if out != [""]:
            thread.add_span("gen", "\n".join(out) + "\n")
        out.clear()

    def finish(goal: Node | None) -> tuple[Thread, Node | None]:
        if goal is not None:
            out.extend(path_lines(goal, start, target))
        else:
            out.append(g.NO_SOLUTION)
        flush()
        thread.finish_reason = "eos"
        return thread, goal

    open_set = [(start.h, start)]
    for node in _best_first(open_set, beam, out):
        if node is not start:
            out.append(g.state_line(target, node.nums, node.ops))
        goal, explore = _emit_children(node, _expand(node, target, beam, rng, s.canonical), target, out,
                                       s.canonical)
        if goal is not None:
            return finish(goal)
        if level < s.max_depth and len(explore) > 1 and rng.random() < s.p_spawn:
            found = _spawn(thread, explore, target, s, rng, level, flush)
            if found is not None:
                out.append(g.goal_line(target, target))
                return finish(found)
        else:
            for kid in explore:
                heapq.heappush(open_set, (kid.h, kid))
    return finish(None)


def _spawn(thread: Thread, explore: list[Node], target: int, s: AprSettings, rng: random.Random, level: int,
           flush: Callable[[], None]) -> Node | None:
    """Delegate every non-leaf successor to a child thread; write spawn and join spans."""
    first = len(thread.children)  # child ids stay unique across a thread's spawns
    children: list[tuple[Thread, Node | None]] = [
        _apr_thread(kid, target, s.sub_beam_size, s, rng, level + 1, f"{thread.id}.{first + i}")
        for i, kid in enumerate(explore)
    ]
    calls = [g.ChildCall(i, level + 1, kid.id) for i, kid in enumerate(explore)]
    flush()
    thread.add_span("spawn", g.render_spawn(calls))
    thread.spawns.append([child for child, _ in children])
    results = [
        g.ChildResult(call, "\n".join(path_lines(goal, kid, target)) + "\n" if goal else None)
        for call, kid, (_, goal) in zip(calls, explore, children)
    ]
    thread.add_span("join", g.render_join(results))
    for _, goal in children:
        if goal is not None:
            return goal
    return None
