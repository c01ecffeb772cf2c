"""Fork-join orchestration over any Backend: run one problem's thread tree, or many at once.

A thread decodes until EOS, a limit, or the end of a spawn block. The orchestrator then parses the
block with the shared grammar, builds each child's prompt from the parent's text, runs the children
concurrently (on the embedded backend they join the running batch), writes the join block from
their answers and lets the parent continue from ``context before the spawn + join block``. Children
may spawn too, up to ``Limits.max_depth``. Malformed output is handled by ``apr.runtime.limits``.

Every thread records its spans with token counts, its finish reason, policy events, and in
``meta`` its calls (prompt, cached and new tokens, prefill/decode seconds; when sampling asks for
log-probs, also the call's prompt text, output text, token ids and log-probs, which RL retrains on)
and its timeline (``t_start``/``t_end``, seconds since the problem started);
``apr.runtime.metrics.runtime_metrics`` sums a tree up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from dataclasses import dataclass, replace
from typing import Callable

from apr import grammar as g
from apr.runtime.backend import Backend, Generation, SamplingParams
from apr.runtime.limits import STOPS, Limits, classify, plan_spawn
from apr.runtime.metrics import runtime_metrics
from apr.threads import Thread

Verifier = Callable[[str, str], bool]  # (thread prompt, answer path) -> is the answer correct


@dataclass(frozen=True)
class SolveConfig:
    sampling: SamplingParams = SamplingParams()  # per call; max_tokens is also capped by the budget
    limits: Limits = Limits()
    verify: Verifier | None = None  # checks child and root answers (meta["verified"])
    early_join: bool = False  # cancel a spawn's other children once one returns a verified answer

    def __post_init__(self) -> None:
        if self.early_join and self.verify is None:
            raise ValueError("early_join needs a verifier: it waits for a verified answer")


# -- public API ------------------------------------------------------------------------------
async def asolve(prompt: str, backend: Backend, config: SolveConfig = SolveConfig(), *, index: int = 0) -> Thread:
    """Run one problem's thread tree. ``index`` only varies the sampling seeds (see ``asolve_many``)."""
    return await _Problem(backend, config, index).solve(prompt)


async def asolve_many(prompts: list[str], backend: Backend, config: SolveConfig = SolveConfig()) -> list[Thread]:
    """Run many problems concurrently; their threads share the backend's batch.

    Problem ``i`` draws its seeds from ``(config.sampling.seed, i)``, so repeated prompts give
    independent samples and ``asolve(p, index=i)`` reproduces ``asolve_many(...)[i]``.
    """
    return list(await asyncio.gather(*(asolve(p, backend, config, index=i) for i, p in enumerate(prompts))))


def solve(prompt: str, backend: Backend, config: SolveConfig = SolveConfig()) -> Thread:
    """Sync ``asolve`` (runs its own event loop)."""
    return asyncio.run(asolve(prompt, backend, config))


def solve_many(prompts: list[str], backend: Backend, config: SolveConfig = SolveConfig()) -> list[Thread]:
    """Sync ``asolve_many`` (runs its own event loop)."""
    return asyncio.run(asolve_many(prompts, backend, config))


# -- one problem -----------------------------------------------------------------------------
class _Problem:
    """Shared state of one problem's tree: limits, thread count, clock, session names."""

    def __init__(self, backend: Backend, config: SolveConfig, index: int):
        self.backend, self.config, self.index = backend, config, index
        self.limits = config.limits
        self.key = f"p{index}-{uuid.uuid4().hex[:8]}"
        self.n_threads = 0
        self.t0 = 0.0
        self.deadline = float("inf")

    async def solve(self, prompt: str) -> Thread:
        self.t0 = time.perf_counter()
        if self.limits.timeout_s is not None:
            self.deadline = self.t0 + self.limits.timeout_s
        root = Thread(id="0", prompt=prompt)
        self.n_threads = 1
        await self.run_thread(root, depth=0, allowance=self.limits.max_total_tokens)
        root.meta["metrics"] = runtime_metrics(root).to_dict()
        return root

    def _params(self, thread: Thread, call: int, max_tokens: int) -> SamplingParams:
        base = self.config.sampling
        seed = None if base.seed is None else zlib.crc32(f"{base.seed}/{self.index}/{thread.id}/{call}".encode())
        return replace(base, max_tokens=min(base.max_tokens, max_tokens), seed=seed,
                       stop=tuple(dict.fromkeys(STOPS + base.stop)))

    async def run_thread(self, thread: Thread, depth: int, allowance: int) -> None:
        """Decode ``thread`` to its end, running its spawns; ``allowance`` caps its subtree's tokens."""
        backend, limits = self.backend, self.limits
        session = f"{self.key}/{thread.id}"
        thread.prompt_tokens = backend.count_tokens(thread.prompt)
        thread.meta.update(depth=depth, t_start=time.perf_counter() - self.t0, calls=[],
                           allowance=allowance, subtree_tokens=0)
        pending, pending_tokens = "", 0  # text written since the last span, and its decoded tokens
        spawns = forced = 0
        try:
            while True:
                left = self._allowance_left(thread)
                if left <= 0:
                    thread.finish_reason = "budget"
                    break
                time_left = self.deadline - time.perf_counter()
                if time_left <= 0:
                    thread.finish_reason = "timeout"
                    break
                params = self._params(thread, len(thread.meta["calls"]), left)
                prompt = thread.context() + pending
                try:
                    gen = await asyncio.wait_for(
                        backend.generate(session, prompt, params),
                        None if time_left == float("inf") else time_left)
                except asyncio.TimeoutError:
                    thread.finish_reason = "timeout"
                    break
                self._record_call(thread, prompt, gen)
                pending_tokens += len(gen.token_ids)
                reason = gen.finish_reason
                if reason == "length" and params.max_tokens < self.config.sampling.max_tokens:
                    reason = "budget"  # cut by the problem's token budget, not by max_tokens
                outcome = classify(pending + gen.text, reason)
                if outcome.event:
                    thread.events.append(outcome.event)
                if outcome.kind == "forced_spawn":
                    forced += 1
                    pending = outcome.text  # the forced marker is not decoded text: count none for it
                    pending_tokens = min(pending_tokens, backend.count_tokens(pending[: -len(g.SPAWN_OPEN) - 1]))
                    if forced > limits.max_spawns:
                        thread.events.append(f"more than max_spawns={limits.max_spawns} forced spawns: thread ended")
                        thread.finish_reason = "spawn_limit"
                        break
                    continue
                if outcome.kind != "spawn":
                    pending = outcome.text
                    thread.finish_reason = "bad_spawn" if outcome.kind == "bad_spawn" else reason
                    break
                spawns += 1
                if spawns > limits.max_spawns:
                    pending = outcome.text + outcome.block
                    thread.events.append(f"spawn {spawns} is over max_spawns={limits.max_spawns}: thread ended")
                    thread.finish_reason = "spawn_limit"
                    break
                before_tokens = min(pending_tokens, backend.count_tokens(outcome.text))
                ran = await self._spawn(thread, depth, outcome.text, outcome.block,
                                        before_tokens, pending_tokens - before_tokens)
                pending, pending_tokens = "", 0
                if not ran:
                    thread.finish_reason = "bad_spawn"
                    break
        except asyncio.CancelledError:
            thread.finish_reason = "cancelled"
            raise
        except Exception as exc:  # a backend failure ends this thread, not the problem
            thread.finish_reason = "error"
            thread.events.append(f"error: {type(exc).__name__}: {exc}")
        finally:
            if pending:
                thread.add_span("gen", pending, pending_tokens)
            backend.release(session)
            self._finish_meta(thread)

    async def _spawn(self, thread: Thread, depth: int, before: str, block: str,
                     before_tokens: int, block_tokens: int) -> bool:
        """Run one spawn block: plan it, run the children, write the join. False: nothing to run."""
        plan = plan_spawn(thread.context() + before, block, depth=depth,
                          threads_left=self.limits.max_threads - self.n_threads, limits=self.limits)
        if plan is None:
            thread.add_span("gen", before + block, before_tokens + block_tokens)
            thread.events.append("spawn block names no valid child: thread ended")
            return False
        thread.events += plan.events
        if before:
            thread.add_span("gen", before, before_tokens)
        thread.add_span("spawn", block, block_tokens)
        share = 0
        if plan.prompts:
            share = self._allowance_left(thread) // len(plan.prompts)
            if share <= 0:
                thread.events.append("no token budget left for children: all calls answered No Solution")
                plan.prompts.clear()
        first = len(thread.children)
        children = []
        for n, (node, prompt) in enumerate(plan.prompts.items()):
            child = Thread(id=f"{thread.id}.{first + n}", prompt=prompt)
            child.meta["node"] = node
            children.append(child)
        thread.spawns.append(children)
        self.n_threads += len(children)
        await self._run_children(thread, children, depth + 1, share)
        thread.meta["subtree_tokens"] += sum(c.meta["subtree_tokens"] for c in children)
        answers = {c.meta["node"]: c.meta.get("answer") for c in children if c.finish_reason != "cancelled"}
        join = g.render_join([g.ChildResult(call, answers.get(call.node_id)) for call in plan.calls])
        thread.add_span("join", join, self.backend.count_tokens(join))
        return True

    def _allowance_left(self, thread: Thread) -> int:
        return thread.meta["allowance"] - thread.meta["subtree_tokens"]

    async def _run_children(self, parent: Thread, children: list[Thread], depth: int, share: int) -> None:
        """Run children concurrently; with early join, cancel the rest once one is verified."""
        tasks = {asyncio.create_task(self.run_thread(c, depth, share)): c for c in children}
        try:
            waiting = set(tasks)
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                winner = next((tasks[t] for t in done if not t.cancelled() and tasks[t].meta.get("verified")), None)
                if winner is not None and self.config.early_join and waiting:
                    parent.events.append(f"early join: thread {winner.id} returned a verified answer; "
                                         f"cancelled {len(waiting)} sibling(s)")
                    for t in waiting:
                        t.cancel()
                    await asyncio.gather(*waiting, return_exceptions=True)
                    break
        finally:
            for t in tasks:
                t.cancel()  # a no-op for finished tasks; stops children if we are cancelled
            await asyncio.gather(*tasks, return_exceptions=True)

    def _record_call(self, thread: Thread, prompt: str, gen: Generation) -> None:
        call = {
            "prompt_tokens": gen.prompt_tokens, "cached_tokens": gen.cached_tokens,
            "new_tokens": len(gen.token_ids), "finish_reason": gen.finish_reason,
            "prefill_s": gen.prefill_seconds, "decode_s": gen.decode_seconds,
        }
        if self.config.sampling.logprobs:  # RL recomputes every call: keep exactly what the model saw and wrote
            call.update(prompt=prompt, text=gen.text, token_ids=list(gen.token_ids), logprobs=gen.logprobs)
        thread.meta["calls"].append(call)
        thread.meta["subtree_tokens"] += len(gen.token_ids)
        if gen.finish_reason == "error":  # say why, so a server's unreadable reply is not a silent wrong tree
            thread.events.append(f"error: {gen.extra.get('error', 'the backend failed')}")

    def _finish_meta(self, thread: Thread) -> None:
        meta = thread.meta
        meta["t_end"] = time.perf_counter() - self.t0
        meta["wall_s"] = meta["t_end"] - meta["t_start"]
        meta["prefill_s"] = sum(c["prefill_s"] for c in meta["calls"])
        meta["decode_s"] = sum(c["decode_s"] for c in meta["calls"])
        answer = g.answer_path(thread.context())
        meta["answer"] = answer
        if self.config.verify is not None:
            meta["verified"] = False
            if answer is not None:
                try:
                    meta["verified"] = bool(self.config.verify(thread.prompt, answer))
                except Exception as exc:  # a verifier crash on garbage text is a failed check
                    thread.events.append(f"verifier error: {type(exc).__name__}: {exc}")
