"""The paper's metrics: one sample's score from its thread tree, and estimators over samples.

A sample is correct when the strict verifier accepts the final answer of its root thread for the
problem's own numbers and target. Token metrics come from ``apr.threads.tree_metrics``: total
tokens count every prompt, generation and join block once (a parent's context is never counted
again when it continues after a join), sequential tokens are the decoded tokens on the critical
path (the parent plus, per spawn, its longest child chain), and the longest context is the
largest window any single LM call needed.

pass@n and cons@n are expectations over the n-subsets of a problem's N samples, so every n <= N
comes from the same N samples: pass@n with the unbiased estimator of Chen et al. (2021),
``1 - C(N-c, n) / C(N, n)``; cons@n by enumerating the subsets (or a seeded sample of them when
there are too many), voting in each, and breaking ties uniformly at random (in expectation).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import asdict, dataclass
from math import comb
from statistics import mean
from typing import Any, Sequence

from apr import grammar as g
from apr.countdown.task import Problem, check_operation, solving_child, verify_trace
from apr.threads import Thread, TokenCounter, tree_metrics

Answer = tuple[str, ...]  # the operations of a final solution path, in order: the vote key



@dataclass(frozen=True)
class SampleScore:
    correct: bool
    failure: str | None  # why the verifier refused the answer (None when correct)
    answer: Answer | None  # None: the trace never restated a solution path
    total_tokens: int
    generated_tokens: int
    sequential_tokens: int
    longest_context: int
    n_threads: int
    n_spawns: int
    children_per_spawn: float
    latency_s: float  # the root thread's wall clock
    finish_reason: str | None
    # A child thread (any depth) gave a verified answer: when the root's answer is refused anyway,
    # the parent lost a solution its children found (absent from results written before this field).
    solved_by_child: bool = False
    # ``a op b=c`` lines the tree wrote (all threads) and those whose arithmetic is wrong.
    operations: int = 0
    wrong_operations: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["answer"] = None if self.answer is None else list(self.answer)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleScore":
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        fields["answer"] = None if d["answer"] is None else tuple(d["answer"])
        if "operations" not in d and "tree" in d:  # a record written before operations were counted
            fields["operations"], fields["wrong_operations"] = arithmetic_errors(Thread.from_dict(d["tree"]))
        return cls(**fields)


def answer_operations(trace: str) -> Answer | None:
    """The operations of the trace's final solution path, or None when it gives no answer."""
    path = g.answer_path(trace)
    return None if path is None else tuple(g.EXPLORED_OPERATIONS_RE.findall(path))


def arithmetic_errors(root: Thread) -> tuple[int, int]:
    """(operations written, operations with wrong arithmetic) over the generated text of every thread.

    Only the arithmetic of ``Exploring Operation: a op b=c`` is checked, by the task's rules
    (``check_operation``); whether the operands were available is the verifier's business.
    """
    total = wrong = 0
    for thread in root.walk():
        for span in thread.spans:
            if span.kind == "gen":
                for line in span.text.splitlines():
                    if m := g.EXPLORE_RE.match(line):
                        total += 1
                        a, op, b, c = m.group(1, 2, 3, 4)
                        wrong += check_operation(int(a), op, int(b), int(c)) is not None
    return total, wrong


def score_tree(root: Thread, problem: Problem, count: TokenCounter | None = None) -> SampleScore:
    """Score one sample: verify the root's final answer and measure the tree."""
    trace = root.context()
    verdict = verify_trace(trace, list(problem.nums), problem.target)
    m = tree_metrics(root, count)
    operations, wrong = arithmetic_errors(root)
    return SampleScore(
        correct=verdict.ok, failure=None if verdict.ok else verdict.failure.value,
        answer=answer_operations(trace), total_tokens=m.total_tokens, generated_tokens=m.generated_tokens,
        sequential_tokens=m.sequential_tokens, longest_context=m.longest_context, n_threads=m.n_threads,
        n_spawns=m.n_spawns, children_per_spawn=m.children_per_spawn,
        latency_s=float(root.meta.get("wall_s", 0.0)), finish_reason=root.finish_reason,
        solved_by_child=solving_child(root, list(problem.nums), problem.target) is not None,
        operations=operations, wrong_operations=wrong,
    )


# -- n samples per problem ---------------------------------------------------------------------
def pass_at(n: int, total: int, correct: int) -> float:
    """Chance that n of the ``total`` samples, drawn without replacement, include a correct one."""
    if not 1 <= n <= total or not 0 <= correct <= total:
        raise ValueError(f"need 1 <= n <= total and 0 <= correct <= total, got n={n} total={total} correct={correct}")
    return 1.0 - comb(total - correct, n) / comb(total, n)


def vote(answers: Sequence[Answer | None], correct: Sequence[bool]) -> float:
    """Majority vote over the samples that gave an answer; the chance the winner is correct.

    Ties are broken uniformly at random, so the result is the share of correct answers among the
    tied winners. An answer counts as correct when any sample that gave it was verified correct.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return 0.0
    right = {a for a, ok in zip(answers, correct) if ok and a is not None}
    top = max(votes.values())
    winners = [a for a, v in votes.items() if v == top]
    return sum(a in right for a in winners) / len(winners)


def cons_at(n: int, answers: Sequence[Answer | None], correct: Sequence[bool], max_subsets: int = 10_000,
            seed: int = 0) -> float:
    """Expected majority-vote accuracy of n samples drawn without replacement from the given ones."""
    total = len(answers)
    if not 1 <= n <= total or len(correct) != total:
        raise ValueError(f"need 1 <= n <= {total} samples with one verdict each")
    if comb(total, n) <= max_subsets:
        subsets: Sequence[Sequence[int]] = list(itertools.combinations(range(total), n))
    else:
        rng = random.Random(seed)
        subsets = [rng.sample(range(total), n) for _ in range(max_subsets)]
    return sum(vote([answers[i] for i in s], [correct[i] for i in s]) for s in subsets) / len(subsets)


# -- one sample per problem --------------------------------------------------------------------
def cumulative_accuracy(scores: Sequence[SampleScore], windows: Sequence[int]) -> list[float]:
    """Accuracy if the context window were W: solved problems whose longest context fits in W."""
    needed = [s.longest_context for s in scores if s.correct]
    return [sum(n <= w for n in needed) / len(scores) for w in windows]


def capped(scores: Sequence[SampleScore], cap: int) -> dict[str, float]:
    """A single-thread (SoS+) sample stopped after ``cap`` generated tokens, derived from the full one.

    Decoding is causal, so the first ``cap`` tokens are what a capped run would have written: the
    sample still counts as solved if it finished within the cap. Latency is scaled by the share of
    tokens kept (decode time per token taken as constant, prefill ignored): an estimate.
    """
    if any(s.n_threads != 1 for s in scores):
        raise ValueError("capping is only exact for single-thread samples")
    kept = [min(1.0, cap / s.generated_tokens) if s.generated_tokens else 1.0 for s in scores]
    return {
        "cap": cap,
        "accuracy": sum(s.correct and s.generated_tokens <= cap for s in scores) / len(scores),
        "sequential_tokens": sum(min(s.sequential_tokens, cap) for s in scores) / len(scores),
        "latency_s": sum(s.latency_s * k for s, k in zip(scores, kept)) / len(scores),
    }


# -- two models on the same problems -----------------------------------------------------------
@dataclass(frozen=True)
class PairedComparison:
    """Model B against model A on the same problems, one verdict each (e.g. greedy decoding).

    Two checkpoints of one model solve mostly the same problems, so their accuracies are compared
    per problem: the standard error of the paired difference, and an exact two-sided sign test on
    the problems only one of them solves (McNemar's exact test).
    """

    n: int
    correct_a: int
    correct_b: int
    only_a: int
    only_b: int

    @property
    def difference(self) -> float:
        return (self.correct_b - self.correct_a) / self.n

    @property
    def standard_error(self) -> float:
        d = self.difference  # per-problem differences are +1 (only_b), -1 (only_a) or 0
        if self.n < 2:
            return float("nan")
        ss = self.only_b * (1 - d) ** 2 + self.only_a * (1 + d) ** 2 + (self.n - self.only_a - self.only_b) * d ** 2
        return (ss / (self.n - 1) / self.n) ** 0.5

    @property
    def p_value(self) -> float:
        m, k = self.only_a + self.only_b, min(self.only_a, self.only_b)
        if m == 0:
            return 1.0
        return min(1.0, 2 * sum(comb(m, i) for i in range(k + 1)) / 2 ** m)


def compare_paired(a: dict[str, bool], b: dict[str, bool]) -> PairedComparison:
    """Compare two models' verdicts keyed by problem id; both must cover the same problems."""
    if a.keys() != b.keys():
        missing = sorted(a.keys() ^ b.keys())
        raise ValueError(f"the two runs cover different problems ({len(missing)} in only one, e.g. {missing[0]!r})")
    if not a:
        raise ValueError("no problems to compare")
    return PairedComparison(
        n=len(a), correct_a=sum(a.values()), correct_b=sum(b.values()),
        only_a=sum(a[k] and not b[k] for k in a), only_b=sum(b[k] and not a[k] for k in a))


def summarise(scores: list[SampleScore]) -> dict[str, float]:
    """Accuracy and the paper's tree metrics, averaged over episodes (children per spawn: over spawns)."""
    spawns = sum(s.n_spawns for s in scores)
    return {
        "accuracy": mean(s.correct for s in scores),
        "threads": mean(s.n_threads for s in scores),
        "children_per_spawn": sum(s.children_per_spawn * s.n_spawns for s in scores) / spawns if spawns else 0.0,
        "tokens_per_thread": mean(s.generated_tokens / s.n_threads for s in scores),
        "sequential_tokens": mean(s.sequential_tokens for s in scores),
        "generated_tokens": mean(s.generated_tokens for s in scores),
    }
