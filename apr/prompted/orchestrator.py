"""Plan, fork, join: adaptive parallel reasoning with any chat model, by prompting alone.

``ask`` turns a task into an ``apr.threads.Thread`` tree. The root asks the model for a plan; one
subtask means plain sequential reasoning, more become child threads that run concurrently in
dependency order, each seeing only its own brief, and a merge call joins their results. Below
``max_depth`` a child may plan again. A failure anywhere (timeout, HTTP error, refusal, spent
budget) abandons the attempt and falls back to one sequential answer; the tree keeps the partial
fork and the reason.

Accounting follows the chat API, which re-sends every prompt: a thread's ``prompt_tokens`` is the
sum over its calls and join spans count 0 tokens (they are inside the merge call's prompt), so
``tree_metrics(tree).total_tokens`` is exactly what the server reported. Dependency waves become
consecutive spawn groups, so the critical path adds up the slowest child of each wave: exact for
fan-out/fan-in plans, an upper bound otherwise, because a subtask really starts as soon as its own
dependencies are done, not when a whole wave is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Awaitable, Callable, Literal

from apr.prompted import prompts
from apr.prompted.answers import extractor, lenient, majority, normalize
from apr.prompted.budget import Budget, BudgetExceeded
from apr.prompted.client import CallFailed, ChatClient, Reply
from apr.prompted.plan import Plan, PlanError, parse_plan, response_format
from apr.prompted.schedule import gather_or_cancel, run_dag
from apr.threads import Thread, tree_metrics


CUT = " [...]"  # marks a subtask result shortened to fit the merge prompt in the window
PlanConstraint = Literal["auto", "json_schema", "json_object", "off"]
PLAN_CONSTRAINTS: dict[str, tuple[str | None, ...]] = {  # what each tries, in order, until the server takes one
    "auto": ("json_schema", "json_object", None), "json_schema": ("json_schema",),
    "json_object": ("json_object",), "off": (None,),
}


class Mode(str, Enum):
    parallel = "parallel"  # plan, fork-join (or sequential if the plan has one subtask)
    sequential = "sequential"  # one call: the baseline
    vote = "vote"  # self-consistency: k independent answers, majority vote


@dataclass(frozen=True)
class AskConfig:
    mode: Mode = Mode.parallel
    max_threads: int = 4  # model calls in flight at once
    max_subtasks: int = 6  # widest plan accepted
    max_depth: int = 1  # planning levels: 1 = only the root plans, 2 = its subtasks may plan too
    votes: int = 5  # samples in vote mode
    verify: bool = False  # check every subtask result before the merge
    extract: str = "answer"  # answer format, see ``answers.extractor``
    max_tokens: int = 2048  # per subtask, merge or answer call
    plan_max_tokens: int = 512  # per plan call: a plan is a short JSON list, and a runaway one must not stall
    temperature: float | None = None  # None: the server's default
    constrain_plan: PlanConstraint = "auto"  # see PLAN_CONSTRAINTS
    token_budget: int | None = None  # for the attempt; the fallback answer is outside it
    time_budget: float | None = None  # seconds, likewise

    def __post_init__(self) -> None:
        for name in ("max_threads", "max_subtasks", "max_depth", "votes", "max_tokens", "plan_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("token_budget", "time_budget"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 when set, got {getattr(self, name)}")
        extractor(self.extract)  # raises on an unknown answer format
        if self.constrain_plan not in PLAN_CONSTRAINTS:
            raise ValueError(f"constrain_plan must be one of {', '.join(PLAN_CONSTRAINTS)}, got {self.constrain_plan!r}")


@dataclass
class Result:
    tree: Thread
    text: str  # the final reply
    answer: str | None  # extracted from it; None if it has no answer in the requested format

    @property
    def lenient_answer(self) -> str | None:
        """The answer, else a guess from a reply that ignored the format (``answers.lenient``)."""
        return self.answer if self.answer is not None else lenient(self.text)

    @property
    def seconds(self) -> float:
        return self.tree.meta["wall_s"]

    @property
    def fallback(self) -> str | None:
        """Why the root answered sequentially after all: a CallFailed kind, or "plan"."""
        return self.tree.meta.get("fallback")

    def stats(self) -> dict[str, Any]:
        """The run's numbers: answer, latency, and the tree's token metrics."""
        m = tree_metrics(self.tree)
        return {"answer": self.answer, "lenient_answer": self.lenient_answer, "seconds": self.seconds, "total_tokens": m.total_tokens,
                "generated_tokens": m.generated_tokens, "sequential_tokens": m.sequential_tokens,
                "threads": m.n_threads, "fallback": self.fallback}

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, **self.stats(), "tree": self.tree.to_dict()}


async def ask(task: str, client: ChatClient, config: AskConfig = AskConfig()) -> Result:
    """Answer ``task`` in ``config.mode``; raises ``CallFailed`` only if the fallback fails too."""
    model = await client.resolve_model()
    run = _Run(client, config)
    root = Thread("root", task, prompt_tokens=0, meta={"mode": config.mode.value, "model": model})
    try:
        text = await run.attempt(root)
    except CallFailed as e:
        if config.mode is Mode.sequential:
            raise
        root.events.append(f"fell back to one sequential answer: {e}")
        root.meta["fallback"] = e.kind
        run.budget = Budget()  # the fallback answer is outside the budget, so one always comes back
        text = await run.gen(root, "fallback", prompts.solve(task, run.final))
    root.meta.update(t_start=0.0, wall_s=round(time.monotonic() - run.t0, 3))
    return Result(root, text, run.extract.find(text))


class _Run:
    """Everything the calls of one ``ask`` share: client, limits, clock, answer format."""

    def __init__(self, client: ChatClient, config: AskConfig):
        self.client, self.config = client, config
        self.budget = Budget(config.token_budget, config.time_budget)
        self.slots = asyncio.Semaphore(config.max_threads)  # held only during a call: no deadlock
        self.extract = extractor(config.extract)
        self.final = prompts.closing(True, self.extract.instruction)
        self.plan_formats = list(PLAN_CONSTRAINTS[config.constrain_plan])  # the first is the one in use
        self.t0 = time.monotonic()

    async def attempt(self, root: Thread) -> str:
        if self.config.mode is Mode.sequential:
            return await self.gen(root, "answer", prompts.solve(root.prompt, self.final))
        if self.config.mode is Mode.vote:
            return await self.vote(root)
        return await self.solve(root, depth=0)

    # -- one call ----------------------------------------------------------------------------
    async def call(self, thread: Thread, purpose: str, messages: prompts.Messages,
                   constraint: str | None = None) -> Reply:
        """One model call within the budget and the thread limit, accounted to ``thread``."""
        async with self.slots:
            self.budget.check()
            tokens_left, seconds_left = self.budget.tokens_left(), self.budget.seconds_left()
            limit = self.config.plan_max_tokens if purpose == "plan" else self.config.max_tokens
            max_tokens = limit if tokens_left is None else min(limit, tokens_left)
            timeout = self.client.config.timeout
            cut_by_budget = seconds_left is not None and seconds_left < timeout
            started = time.monotonic() - self.t0
            try:
                reply = await self.client.chat(
                    messages, max_tokens=max_tokens, temperature=self.config.temperature,
                    timeout=seconds_left if cut_by_budget else timeout,
                    response_format=response_format(constraint, self.config.max_subtasks))
            except (CallFailed, asyncio.CancelledError) as e:  # an abandoned call stays in the tree
                kind = getattr(e, "kind", "cancelled")
                thread.meta.setdefault("calls", []).append({
                    "purpose": purpose, "start_s": round(started, 3),
                    "seconds": round(time.monotonic() - self.t0 - started, 3), "abandoned": kind})
                if kind == "timeout" and cut_by_budget:
                    raise BudgetExceeded(f"time budget of {self.config.time_budget:g} s spent") from None
                raise
        self.budget.charge(reply.prompt_tokens + reply.completion_tokens)
        thread.prompt_tokens = (thread.prompt_tokens or 0) + reply.prompt_tokens
        thread.finish_reason = reply.finish_reason
        record = {"purpose": purpose, "start_s": round(started, 3), "seconds": round(reply.seconds, 3),
                  "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "finish_reason": reply.finish_reason}
        if reply.usage_estimated:
            record["usage_estimated"] = True
        if constraint is not None:
            record["response_format"] = constraint
        thread.meta.setdefault("calls", []).append(record)
        return reply

    async def gen(self, thread: Thread, purpose: str, messages: prompts.Messages) -> str:
        reply = await self.call(thread, purpose, messages)
        thread.add_span("gen", reply.text, reply.completion_tokens)
        return reply.text

    # -- plan, fork, join --------------------------------------------------------------------
    async def solve(self, thread: Thread, depth: int) -> str:
        """Answer ``thread.prompt``, forking if the plan has several subtasks."""
        closing = prompts.closing(depth == 0, self.extract.instruction)
        if depth < self.config.max_depth:
            plan = await self.plan(thread)
            if plan is not None and len(plan.subtasks) > 1:
                return await self.fork_join(thread, plan, depth, closing)
        return await self.gen(thread, "answer", prompts.solve(thread.prompt, closing))

    async def plan(self, thread: Thread) -> Plan | None:
        """The thread's plan, asked for again once with the validation error; None: go sequential.

        The reply that forks becomes the thread's spawn span; every other reply a gen span.
        """
        messages = prompts.plan(thread.prompt, self.config.max_subtasks)
        for _ in range(2):
            reply = await self.plan_call(thread, messages)
            try:
                plan = parse_plan(reply.text, self.config.max_subtasks)
            except PlanError as e:
                thread.add_span("gen", reply.text, reply.completion_tokens)
                thread.events.append(f"invalid plan: {e}")
                messages = prompts.plan_retry(messages, reply.text, str(e))
                continue
            thread.add_span("spawn" if len(plan.subtasks) > 1 else "gen", reply.text, reply.completion_tokens)
            thread.events += [f"plan repaired: {note}" for note in plan.repairs]
            return plan
        thread.events.append("no valid plan after one retry: answering sequentially")
        thread.meta["fallback"] = "plan"
        return None

    async def plan_call(self, thread: Thread, messages: prompts.Messages) -> Reply:
        """A plan call under the first output constraint the server accepts (``--constrain-plan``)."""
        while True:
            constraint = self.plan_formats[0]
            try:
                return await self.call(thread, "plan", messages, constraint)
            except CallFailed as e:
                if e.kind != "http" or len(self.plan_formats) == 1:
                    raise
                if self.plan_formats[0] == constraint:  # a concurrent plan call may have moved on already
                    self.plan_formats.pop(0)
                thread.events.append(f"the server refused response_format {constraint} ({e}): "
                                     f"plans go {self.plan_formats[0] or 'unconstrained'} from now on")

    async def fork_join(self, thread: Thread, plan: Plan, depth: int, closing: str) -> str:
        subtasks = {s.id: s for s in plan.subtasks}
        children = {s.id: Thread(f"{thread.id}/{s.id}", "", prompt_tokens=0,
                                 meta={"task": s.task, "depends_on": s.depends_on}) for s in plan.subtasks}
        for i, wave in enumerate(plan.waves()):
            if i:
                thread.add_span("spawn", "", 0)  # a later wave of the fork the plan declared
            thread.spawns.append([children[s.id] for s in wave])

        async def run(sid: str, inputs: dict[str, str]) -> str:
            child = children[sid]
            child.prompt = prompts.subtask_brief(thread.prompt, subtasks[sid], inputs)
            return await self.child(child, lambda: self.subtask(child, depth + 1))

        try:
            results = await run_dag(plan.dependencies(), run)
        except BaseException:
            for child in children.values():
                child.finish_reason = child.finish_reason or "cancelled"  # never started
            raise
        join = self.fit_join(thread, plan, results, closing)
        thread.add_span("join", join, 0)  # its tokens are counted in the merge call's prompt
        return await self.gen(thread, "merge", prompts.merge(thread.prompt, join, closing))

    def fit_join(self, thread: Thread, plan: Plan, results: dict[str, str], closing: str) -> str:
        """The join block, with every result cut to an equal share if the merge prompt would not fit
        the server's context window beside the merge's ``max_tokens``. Tokens are estimated at one per
        3 characters (most tokenizers average 3.5-4 on English), so the cut errs on the safe side."""
        join = prompts.join_block(plan, results)
        window = self.client.context_window
        if window is None:
            return join
        chars = lambda text: sum(len(m["content"]) for m in prompts.merge(thread.prompt, text, closing))  # noqa: E731
        room = (window - self.config.max_tokens) * 3
        if chars(join) <= room:
            return join
        rest = chars(prompts.join_block(plan, {sid: "" for sid in results}))
        share = max(80, (room - rest) // max(1, len(results)) - len(CUT))
        cut = {sid: r if len(r) <= share else r[:share] + CUT for sid, r in results.items()}
        thread.events.append(f"merge prompt over the {window}-token window: each result cut to {share} characters")
        return prompts.join_block(plan, cut)

    async def subtask(self, child: Thread, depth: int) -> str:
        result = await self.solve(child, depth)
        return await self.verify(child, result) if self.config.verify else result

    async def verify(self, child: Thread, result: str) -> str:
        """Keep the result if the model confirms it; take its correction if it gives one."""
        verdict = await self.gen(child, "verify", prompts.verify(child.prompt, result))
        head, _, correction = verdict.strip().partition("\n")
        head = head.lower()
        if "incorrect" in head and correction.strip():
            child.meta["verdict"] = "corrected"
            return correction.strip()
        child.meta["verdict"] = "incorrect" if "incorrect" in head else "correct" if "correct" in head else "unclear"
        return result

    async def child(self, thread: Thread, work: Callable[[], Awaitable[str]]) -> str:
        """Run one child thread's work, recording when it ran and how it ended."""
        start = time.monotonic()
        thread.meta["t_start"] = round(start - self.t0, 3)  # the runtime's keys, so views read both
        try:
            return await work()
        except CallFailed as e:
            thread.finish_reason = e.kind
            thread.events.append(str(e))
            raise
        except asyncio.CancelledError:
            thread.finish_reason = "cancelled"
            raise
        finally:
            thread.meta["wall_s"] = round(time.monotonic() - start, 3)

    # -- self-consistency --------------------------------------------------------------------
    async def vote(self, root: Thread) -> str:
        """k independent answers in parallel; the reply is a sample with the majority answer."""
        samples = [Thread(f"root/sample-{i}", root.prompt, prompt_tokens=0) for i in range(1, self.config.votes + 1)]
        root.add_span("spawn", "", 0)  # the orchestrator forks here; the model wrote nothing
        root.spawns.append(samples)
        messages = prompts.solve(root.prompt, self.final)
        texts = await gather_or_cancel(
            self.child(s, lambda s=s: self.gen(s, "sample", messages)) for s in samples)
        answers = [self.extract.find(t) for t in texts]
        for sample, answer in zip(samples, answers):
            sample.meta["answer"] = answer
        winner, tally = majority(answers)
        root.add_span("join", "Votes: " + (", ".join(f"{a} x{n}" for a, n in tally.most_common()) or "none"), 0)
        root.meta["votes"] = dict(tally)
        if winner is None:
            root.events.append("no sample has an answer in the requested format: keeping the first")
            return texts[0]
        return next(t for t, a in zip(texts, answers) if a is not None and normalize(a) == winner)
