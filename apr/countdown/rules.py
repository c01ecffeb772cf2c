"""The paper's arithmetic rules: one place that says which operations are legal.

For an unordered pair (a, b) taken in list order: ``a+b`` and ``a*b`` as written; subtraction is
always larger minus smaller (never negative, 0 allowed); division is larger over smaller, only
when exact and the divisor is not zero. Results are appended to the remaining numbers.
"""

from __future__ import annotations

from itertools import combinations
from typing import Iterator, NamedTuple


class Operation(NamedTuple):
    left: int
    op: str
    right: int
    result: int

    def __str__(self) -> str:
        return f"{self.left}{self.op}{self.right}={self.result}"


def combine(a: int, b: int) -> list[Operation]:
    """Every legal operation on the pair ``(a, b)``, in the reference's order (+, *, -, /)."""
    ops = [Operation(a, "+", b, a + b), Operation(a, "*", b, a * b)]
    big, small = (b, a) if a <= b else (a, b)
    ops.append(Operation(big, "-", small, big - small))
    if small != 0 and big % small == 0:
        ops.append(Operation(big, "/", small, big // small))
    return ops


def successors(nums: list[int]) -> Iterator[tuple[Operation, list[int]]]:
    """All (operation, resulting numbers) one step from ``nums``, in the reference's order."""
    n = len(nums)
    for i, j in combinations(range(n), 2):
        rest = [nums[k] for k in range(n) if k != i and k != j]
        for operation in combine(nums[i], nums[j]):
            yield operation, rest + [operation.result]


def check_operation(left: int, op: str, right: int, result: int) -> str | None:
    """Why ``left op right = result`` breaks the rules, or None when it is legal and correct."""
    if op == "+":
        expected = left + right
    elif op == "*":
        expected = left * right
    elif op == "-":
        if left < right:
            return f"subtraction must be larger minus smaller, got {left}-{right}"
        expected = left - right
    elif op == "/":
        if right == 0:
            return f"division by zero in {left}/{right}"
        if left < right:
            return f"division must be larger over smaller, got {left}/{right}"
        if left % right:
            return f"division must be exact, {left}/{right} leaves a remainder"
        expected = left // right
    else:
        return f"unknown operator {op!r}"
    if expected != result:
        return f"{left}{op}{right} is {expected}, not {result}"
    return None


def _values(a: int, b: int) -> tuple[int, ...]:
    big, small = (b, a) if a <= b else (a, b)
    if small and big % small == 0:
        return a + b, a * b, big - small, big // small
    return a + b, a * b, big - small


def is_solvable(nums: list[int] | tuple[int, ...], target: int) -> bool:
    """Whether some expression uses every number once to reach ``target``.

    Any sequence of pairwise combinations is an expression tree over a partition of the inputs,
    so the values reachable from each subset (a bitmask DP) decide solvability; the last
    combination is checked by inverting each operation against the target instead of
    enumerating it. Much faster than search, which matters when filtering millions of draws.
    """
    n = len(nums)
    full = (1 << n) - 1
    reach: dict[int, set[int]] = {1 << i: {v} for i, v in enumerate(nums)}
    for mask in sorted(range(1, full), key=int.bit_count):
        if mask in reach:
            continue
        vals: set[int] = set()
        sub = (mask - 1) & mask
        while sub:
            other = mask ^ sub
            if sub < other:  # each unordered split once
                for a in reach[sub]:
                    for b in reach[other]:
                        vals.update(_values(a, b))
            sub = (sub - 1) & mask
        reach[mask] = vals
    if n == 1:
        return nums[0] == target
    sub = (full - 1) & full
    while sub:
        other = full ^ sub
        if sub < other:
            right = reach[other]
            for a in reach[sub]:
                if (target - a in right or a + target in right or a - target in right
                        or (a and target % a == 0 and target // a in right) or (a == 0 == target)
                        or (a and a * target in right)
                        or (a and target and a % target == 0 and a // target in right)):
                    return True
        sub = (sub - 1) & full
    return False


def solve(nums: list[int], target: int) -> list[Operation] | None:
    """One solution (a list of operations) reaching ``target`` using every number once, or None.

    Exhaustive DFS with memoisation on the sorted multiset: fast enough to filter millions of
    candidate problems.
    """
    failed: set[tuple[int, ...]] = set()

    def dfs(state: list[int]) -> list[Operation] | None:
        if len(state) == 1:
            return [] if state[0] == target else None
        key = tuple(sorted(state))
        if key in failed:
            return None
        for operation, nxt in successors(state):
            found = dfs(nxt)
            if found is not None:
                return [operation] + found
        failed.add(key)
        return None

    return dfs(list(nums))
