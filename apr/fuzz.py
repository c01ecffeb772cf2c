"""Fuzz the fork-join runtime: many rollouts, every tree checked against the runtime's invariants.

Two kinds of "model" write the text:
* an adversarial script (most rollouts) that mixes search lines, spawn blocks with valid, unknown,
  repeated and malformed calls, stray markers, joins written by the model, EOS inside blocks,
  endless output and, sometimes, a correct solution path (so verification and early join run);
* a tiny random-weight Llama on the embedded engine, its marker tokens boosted so it writes
  structure often, sampled at temperature 1 with many problems sharing one batch.

Limits, early join and timeouts are drawn at random per rollout. Nothing may raise, hang, exceed
a limit, or record an inconsistent tree; ``Report.violations`` lists what broke.

``python scripts/fuzz_runtime.py`` runs it from the command line; ``tests/runtime/test_fuzz.py``
runs a small sample.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from apr import grammar as g
from apr.countdown.rules import successors
from apr.runtime.backend import SamplingParams
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.limits import Limits, parse_calls
from apr.countdown.verifier import verify_countdown
from apr.runtime.orchestrator import SolveConfig, asolve
from apr.runtime.scripted import ScriptedBackend
from apr.threads import Thread, tree_metrics
from apr.tokenizer import load_tokenizer

FINISH_REASONS = {"eos", "stop", "length", "context", "budget", "timeout", "cancelled", "bad_spawn", "spawn_limit"}


# -- the adversarial model -----------------------------------------------------------------------
def solution_path(state: g.PromptState) -> list[str] | None:
    """A correct path from the prompt's state to the target, in the grammar (depth-first search)."""
    node = state.node_id or "0"

    def search(nums: list[int], ops: list[str], node_id: str) -> list[str] | None:
        for k, (op, new) in enumerate(successors(nums)):
            lines = [g.state_line(state.target, nums, ops), g.explore_line(str(op), new)]
            if len(new) == 1:
                if new[0] == state.target:
                    return lines + [g.goal_line(state.target, state.target)]
                continue
            kid = f"{node_id},{k}"
            rest = search(new, ops + [str(op)], kid)
            if rest is not None:
                return lines + [g.generated_line(kid, state.target, new, str(op)), g.move_line(kid)] + rest
        return None

    path = search(state.nums, state.ops, node)
    return None if path is None else [g.move_line(node)] + path


def adversarial(prompt: str, rng: random.Random) -> str:
    """What a badly behaved model might write after ``prompt`` (deterministic given ``rng``)."""
    try:
        state = g.parse_prompt(prompt)
    except g.GrammarError:
        state = g.PromptState(27, [22, 26, 31, 53], [], "0", None)
    node = state.node_id or "0"
    if node != "0" and rng.random() < 0.4:  # a child that answers at once, or searches for long
        path = solution_path(state)
        if path is not None:
            return "\n" + g.goal_line(state.target, state.target) + "\n" + "\n".join(path) + "\n"
        return "\nMoving to Node #0\n" * rng.randint(50, 500) + g.NO_SOLUTION
    known = [m.group(1) for m in re.finditer(r"^Generated Node #([\d,]+):", prompt, re.M)]
    out = []
    for n in range(rng.randint(1, 6)):
        kind = "search" if n == 0 else rng.choices(["search", "spawn", "join", "stray", "garbage", "solve", "long"],
                                                   weights=[3, 6, 1, 1, 1, 3, 0.3])[0]
        if kind == "search":
            moves = list(successors(state.nums))
            for _ in range(rng.randint(1, 5) if moves else 0):
                op, nums = rng.choice(moves)  # real successors: children get genuine states
                kid = f"{node},{len(known) + rng.randint(0, 1)}"  # now and then a repeated id
                out.append(f"\n{g.explore_line(str(op), nums)}\n{g.generated_line(kid, state.target, nums, str(op))}\n")
                known.append(kid)
        elif kind == "spawn":
            lines = []
            pool = rng.sample(known, len(known))
            for i in range(rng.choice([0, len(pool), len(pool), len(pool), len(pool) + 1, 8, 20])):
                r = rng.random()
                target = pool.pop() if pool and r < 0.8 else f"{node},{rng.randint(20, 99)}"
                lines.append(f"<Start Sub Search {i} at level {rng.randint(0, 3)}> Moving to Node #{target}\n"
                             if r < 0.9 else rng.choice(["<Start Sub Search x>\n", "Moving to Node #\n", "\n"]))
            opener = "" if rng.random() < 0.1 else g.SPAWN_OPEN + "\n"
            closer = "" if rng.random() < 0.1 else g.SPAWN_CLOSE + "\n"
            out.append(opener + "".join(lines) + closer)
        elif kind == "join":
            out.append(g.JOIN_OPEN + "\n<Goal Reached in Sub Search 0 at level 1 at Node #0,0>\n")
        elif kind == "stray":
            out.append(rng.choice([g.SPAWN_CLOSE, g.JOIN_CLOSE, g.SPAWN_OPEN, "<Start Sub Search 0 at level 1>"]))
        elif kind == "garbage":
            out.append("".join(rng.choice("ab#,:[]<>\n\u00e9\u2603 0123456789") for _ in range(rng.randint(1, 40))))
        elif kind == "solve":
            path = solution_path(state) if len(state.nums) <= 3 or rng.random() < 0.2 else None
            if path is not None:
                out.append("\n" + g.goal_line(state.target, state.target) + "\n" + "\n".join(path) + "\n")
            else:
                out.append("\n" + g.NO_SOLUTION)
        elif kind == "long":
            out.append("Moving to Node #0\n" * rng.randint(100, 2000))
    return "".join(out)


# -- a random model that writes structure ----------------------------------------------------------
def structured_random_model(tok, seed: int) -> LlamaForCausalLM:
    """A tiny random Llama whose output layer favours the grammar's markers and node ids."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      initializer_range=0.2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    favoured = [g.SPAWN_OPEN, g.SPAWN_CLOSE, g.JOIN_OPEN, "<Start Sub Search ", " at level ", "> ",
                "Moving to Node #", "Generated Node #", "\n", "0", "1", ","]
    with torch.no_grad():
        for text in favoured:
            for i in tok.encode(text, add_special_tokens=False):
                model.lm_head.weight[i] *= 4
    return model


# -- invariants -------------------------------------------------------------------------------------
def check_tree(root: Thread, config: SolveConfig, slack_s: float = 2.0) -> list[str]:
    """Every violated invariant of a finished tree, as messages (empty: the tree is sound)."""
    lim = config.limits
    bad: list[str] = []
    threads = list(root.walk())
    if len(threads) > lim.max_threads:
        bad.append(f"{len(threads)} threads > max_threads {lim.max_threads}")
    decoded = sum(c["new_tokens"] for t in threads for c in t.meta.get("calls", []))
    if decoded > lim.max_total_tokens:
        bad.append(f"{decoded} decoded tokens > budget {lim.max_total_tokens}")
    if lim.timeout_s is not None and root.meta.get("wall_s", 0) > lim.timeout_s + slack_s:
        bad.append(f"wall {root.meta['wall_s']:.2f}s > timeout {lim.timeout_s}s")
    for t in threads:
        where = f"thread {t.id}"
        if t.finish_reason not in FINISH_REASONS:
            bad.append(f"{where}: finish reason {t.finish_reason!r} {t.events[-1:] }")
        depth = t.meta.get("depth")
        if depth is None or depth > lim.max_depth or (t.children and depth >= lim.max_depth):
            bad.append(f"{where}: depth {depth} with {len(t.children)} children (max_depth {lim.max_depth})")
        kinds = [s.kind for s in t.spans]
        if kinds.count("spawn") != len(t.spawns) or kinds.count("spawn") > lim.max_spawns:
            bad.append(f"{where}: {kinds.count('spawn')} spawn spans, {len(t.spawns)} groups")
        unanswered = [i for i, (a, b) in enumerate(zip(kinds, kinds[1:] + ["end"])) if a == "spawn" and b != "join"]
        if unanswered and (unanswered != [len(kinds) - 1] or t.finish_reason != "cancelled"):
            bad.append(f"{where}: a spawn span is not followed by its join")  # only a cancelled thread stops there
        if t.prompt_tokens is None or any(s.n_tokens is None or s.n_tokens < 0 for s in t.spans):
            bad.append(f"{where}: missing token counts")
        if any(g.JOIN_OPEN in s.text for s in t.spans if s.kind != "join"):
            bad.append(f"{where}: model-written join text was kept")
        bad += _check_spawns(t, lim)
        if not t.meta.get("t_start", -1) <= t.meta.get("t_end", -2):
            bad.append(f"{where}: bad timeline")
        if any(c.meta.get("t_end", 0) > t.meta.get("t_end", 0) + 1e-6 for c in t.children):
            bad.append(f"{where}: a child outlived its parent")
    try:
        metrics = tree_metrics(root)
        if metrics.sequential_tokens > metrics.generated_tokens:
            bad.append("sequential tokens exceed generated tokens")
    except ValueError as e:
        bad.append(f"tree metrics: {e}")
    if Thread.from_dict(json.loads(json.dumps(root.to_dict()))).to_dict() != json.loads(json.dumps(root.to_dict())):
        bad.append("the tree does not survive a JSON round trip")
    return bad


def _check_spawns(t: Thread, lim: Limits) -> list[str]:
    bad = []
    context = t.prompt
    spawn_index = 0
    for i, span in enumerate(t.spans):
        if span.kind == "spawn":
            calls, _ = parse_calls(span.text)
            group = t.spawns[spawn_index]
            spawn_index += 1
            if len(group) > lim.max_children:
                bad.append(f"thread {t.id}: {len(group)} children > max_children")
            join = t.spans[i + 1] if i + 1 < len(t.spans) else None
            if join is None or join.kind != "join":
                continue
            answered = [r.call for r in g.parse_join(join.text)]
            if answered != calls:
                bad.append(f"thread {t.id}: join answers {len(answered)} calls, the block has {len(calls)}")
            for child in group:
                if child.prompt != g.child_prompt_from_context(context, child.meta["node"]):
                    bad.append(f"thread {t.id}: child {child.id} prompt does not follow the parent's text")
        else:  # a joined spawn block leaves the context; gen and join text stay
            context += span.text
    return bad


# -- the run ----------------------------------------------------------------------------------------
@dataclass
class Report:
    rollouts: int = 0
    finish: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    threads: int = 0


def random_config(rng: random.Random, per_call: int) -> SolveConfig:
    limits = Limits(max_children=rng.choice([1, 2, 4, 16]), max_depth=rng.choice([0, 1, 1, 2, 3]),
                    max_threads=rng.choice([1, 3, 8, 64, 64]), max_spawns=rng.choice([1, 2, 8]),
                    max_total_tokens=rng.choice([50, 500, 5000, 20000]),
                    timeout_s=rng.choice([None, None, 0.05, 1.0]))
    sampling = SamplingParams(temperature=rng.choice([0.0, 1.0]), top_k=rng.choice([0, 5]),
                              top_p=rng.choice([1.0, 0.8]), max_tokens=per_call, seed=rng.randint(0, 10**6))
    return SolveConfig(sampling=sampling, limits=limits, verify=verify_countdown, early_join=rng.random() < 0.5)


def random_prompt(rng: random.Random) -> str:
    """A Countdown prompt, solvable most of the time (the target is a random reduction of the numbers)."""
    nums = [rng.randint(1, 99) for _ in range(rng.choice([2, 3, 4]))]
    board = nums
    while len(board) > 1:
        board = rng.choice(list(successors(board)))[1]
    target = board[0] if 10 <= board[0] <= 100 else rng.randint(10, 100)
    return g.apr_prompt(target, nums, sub_call_budget=rng.choice([None, 3, 10]))


def _event_kind(event: str) -> str:
    return " ".join(w for w in event.split()[:4] if not any(ch.isdigit() for ch in w))


async def _rollout(prompt: str, backend, config: SolveConfig, index: int, report: Report) -> None:
    tree = await asolve(prompt, backend, config, index=index)
    report.rollouts += 1
    for t in tree.walk():
        report.threads += 1
        report.finish[t.finish_reason] += 1
        report.events.update(_event_kind(e) for e in t.events)
    report.violations += [f"rollout {index}: {v}" for v in check_tree(tree, config)]


def fuzz(rollouts: int, seed: int = 0, model_share: float = 0.1, batch: int = 32) -> Report:
    """Run ``rollouts`` rollouts (``model_share`` of them on the random model) and check every tree."""
    rng = random.Random(seed)
    tok = load_tokenizer()
    report = Report()
    n_model = round(rollouts * model_share)
    model_backend = EmbeddedBackend(structured_random_model(tok, seed), tok, max_slots=64) if n_model else None

    async def run() -> None:
        done = 0
        while done < rollouts:
            size = min(batch, rollouts - done)
            jobs = []
            for i in range(done, done + size):
                on_model = i < n_model
                config = random_config(rng, per_call=rng.choice([16, 64]) if on_model else 4096)
                if on_model:
                    backend = model_backend
                else:
                    backend = ScriptedBackend(adversarial, tok, seed=i, context_length=rng.choice([256, 4096]),
                                              token_delay=rng.choice([0.0, 1e-5, 1e-4]))
                jobs.append(_rollout(random_prompt(rng), backend, config, i, report))
            await asyncio.gather(*jobs)
            done += size
        if model_backend is not None:
            engine = model_backend.engine
            if engine.has_work() or engine.slots_in_use():
                report.violations.append("the engine kept work or caches after every rollout ended")

    asyncio.run(run())
    return report
