"""Benchmark the embedded fork-join engine against the two ways the paper's setup would run a tree.

Same model, same tree, measured in one run:
* embedded: our engine, children batched, the parent's join reuses its KV cache (prefills the join only);
* (a) sequential: every call through transformers' ``generate``, one after another, full prompt each time;
* (b) re-prefill: our engine and batching, but every call re-prefills its whole prompt (the paper's
  client-side orchestration on a batching server without a prefix cache).

The model is a random-weight Llama of realistic size for this CPU (hidden 512, 8 layers, bf16 unless ``--dtype fp32``). Its
output layer is restricted to lowercase letters and newlines, whose text re-tokenizes to the same
tokens, as a trained model's text does (a random model's byte soup would not), and it never picks
EOS, so every call decodes exactly its planned length. The tree comes from a solver demonstration
whose root spawns 8 children (their prompts and the join block are real); decode lengths are set
by flags. The calls follow the orchestrator: parent decodes, its last tokens stand for the spawn
block and are dropped at the join, the 8 children decode concurrently, the parent continues from
``context before the spawn + join block``.

    python benchmarks/runtime.py                 # ~2 minutes on a quiet machine, 10+ on a loaded one
    python benchmarks/runtime.py --child 128     # quicker
    python benchmarks/runtime.py --dtype fp32    # weights as the CLI loads them (CPUs without AMX or AVX512-BF16)
    python benchmarks/runtime.py --preset paper --device cuda   # the paper's 228M model on a GPU (read wall times)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import string
import time
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from apr.countdown.search import AprSettings, apr_search
from apr.models.presets import PRESETS, model_config
from apr.precision import TORCH_NAMES, torch_dtype
from apr.runtime.backend import Backend, SamplingParams
from apr.runtime.cpu import cpu_model
from apr.runtime.device import resolve_device
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.model_runner import transpose_weight_storage
from apr.runtime.sequential import SequentialBackend
from apr.tokenizer import load_tokenizer

SPAWN_TOKENS = 24  # the tail of the parent's text that plays the spawn block (one char = one token here)


@dataclass(frozen=True)
class TreePlan:
    prompt: str
    child_prompts: list[str]
    join: str
    parent_tokens: int
    child_tokens: int
    after_tokens: int

    @property
    def critical_path(self) -> int:
        return self.parent_tokens + self.child_tokens + self.after_tokens


def eight_child_demo() -> tuple[str, list[str], str]:
    """Root prompt, child prompts and join block of a solver demonstration with an 8-child spawn."""
    for seed in range(10_000):
        rng = random.Random(seed)
        nums, target = [rng.randint(1, 99) for _ in range(4)], rng.randint(10, 100)
        demo = apr_search(nums, target, AprSettings(beam_size=8, sub_beam_size=8), random.Random(seed))
        if demo.spawns and len(demo.spawns[0]) == 8:
            join = next(s.text for s in demo.spans if s.kind == "join")
            return demo.prompt, [c.prompt for c in demo.spawns[0]], join
    raise RuntimeError("no demonstration with an 8-child spawn")


def benchmark_model(tok, hidden: int, layers: int, preset: str | None = None,
                    dtype: torch.dtype = torch.bfloat16) -> LlamaForCausalLM:
    """A random Llama in ``dtype``: a named preset's shape, or ``hidden`` x ``layers`` with 64-wide heads."""
    torch.manual_seed(0)
    if preset:
        cfg = model_config(preset, tok, context_length=2048)
    else:
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                          num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                          max_position_embeddings=2048, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    for p in model.parameters():  # parameters only: RoPE's inv_freq stays fp32, as from_pretrained keeps it
        p.data = p.data.to(dtype)
    allowed = [tok.convert_tokens_to_ids(c) for c in string.ascii_lowercase + "\n"]
    with torch.no_grad():
        keep = model.lm_head.weight[allowed].clone() * 8
        model.lm_head.weight.zero_()  # every other token (EOS included) gets logit 0 and never wins
        model.lm_head.weight[allowed] = keep
    return model


@dataclass(frozen=True)
class Timing:
    """Wall and CPU seconds of one measured stretch of work. With one torch thread the process's CPU time is
    the work done; on a machine shared with other jobs, wall time also counts the neighbours."""

    wall: float
    cpu: float

    @staticmethod
    def start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    @classmethod
    def since(cls, mark: tuple[float, float]) -> "Timing":
        return cls(time.perf_counter() - mark[0], time.process_time() - mark[1])


def best(spans: list[Timing]) -> Timing:
    return Timing(min(s.wall for s in spans), min(s.cpu for s in spans))


async def run_tree(backend: Backend, plan: TreePlan) -> dict:
    """One tree, called as the orchestrator calls the backend. Returns phase timings and the parent's text."""
    t0 = Timing.start()
    first = await backend.generate("root", plan.prompt, SamplingParams(max_tokens=plan.parent_tokens))
    parent = Timing.since(t0)  # alone in the batch: batch-1 steps
    t1 = Timing.start()
    children = await asyncio.gather(*(
        backend.generate(f"child{i}", p, SamplingParams(max_tokens=plan.child_tokens))
        for i, p in enumerate(plan.child_prompts)))
    spawn = Timing.since(t1)
    for i in range(len(children)):
        backend.release(f"child{i}")
    after = await backend.generate("root", plan.prompt + first.text[: -SPAWN_TOKENS] + plan.join,
                                   SamplingParams(max_tokens=plan.after_tokens))
    tree = Timing.since(t0)
    backend.release("root")
    assert len(first.token_ids) == plan.parent_tokens and all(len(c.token_ids) == plan.child_tokens for c in children)
    step = Timing(parent.wall / plan.parent_tokens, parent.cpu / plan.parent_tokens)
    return {"tree": tree, "spawn": spawn, "step": step, "join_cached": after.cached_tokens,
            "join_prompt": after.prompt_tokens, "parent_text": first.text}


async def join_once(backend: Backend, parent: str, join: str) -> Timing:
    """One join onto a session holding ``parent`` (spawn block included): the continuation's prefill.

    The parent's context is prefilled rather than decoded (the cache holds the same tokens either
    way); the join call decodes a single token, so it measures the prefill.
    """
    await backend.generate("parent", parent, SamplingParams(max_tokens=1))
    mark = Timing.start()
    await backend.generate("parent", parent[: -SPAWN_TOKENS] + join, SamplingParams(max_tokens=1))
    return Timing.since(mark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a model preset's shape instead of --hidden/--layers")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=sorted(TORCH_NAMES), default="bf16",
                        help="the model's weights (the engine's CLI default is fp32; bf16 wants AMX or a GPU)")
    parser.add_argument("--parent", type=int, default=400, help="tokens the parent decodes before its spawn")
    parser.add_argument("--child", type=int, default=256, help="tokens each of the 8 children decodes")
    parser.add_argument("--after", type=int, default=64, help="tokens the parent decodes after the join")
    parser.add_argument("--join-parent", type=int, default=1000, help="parent tokens for the join measurement")
    parser.add_argument("--rounds", type=int, default=2, help="tree runs per system, interleaved; the best counts")
    parser.add_argument("--cpu-threads", "--threads", type=int, default=1,
                        help="torch threads; on a shared machine 2 threads spin-wait against other jobs and run "
                             "up to ~50x slower than 1 (measured), so 1 is the default")
    args = parser.parse_args()
    torch.set_num_threads(args.cpu_threads)
    tok = load_tokenizer()
    device = resolve_device(args.device)
    model = benchmark_model(tok, args.hidden, args.layers, args.preset, torch_dtype(args.dtype)).to(device)
    transpose_weight_storage(model)  # as EmbeddedBackend.from_checkpoint does (fp32 on CPU); generate uses it too
    prompt, child_prompts, join = eight_child_demo()
    plan = TreePlan(prompt, child_prompts, join, args.parent, args.child, args.after)
    systems = {
        "embedded": EmbeddedBackend(model, tok, max_slots=16),
        "sequential": SequentialBackend(model, tok),
        "re-prefill": EmbeddedBackend(model, tok, max_slots=16, reuse_cache=False),
    }
    asyncio.run(run_tree(systems["embedded"], TreePlan(prompt, child_prompts, join, 16, 16, 16)))  # warm up
    runs: dict[str, list[dict]] = {name: [] for name in systems}
    for r in range(args.rounds):  # interleaved, so a change in the machine's speed hits every system
        pair = ["embedded", "re-prefill"][:: 1 if r % 2 == 0 else -1]  # adjacent, in alternating order
        for name in [*pair, "sequential"]:
            runs[name].append(asyncio.run(run_tree(systems[name], plan)))
    res = {name: {k: best([r[k] for r in rs]) for k in ("tree", "spawn", "step")} for name, rs in runs.items()}

    # A parent of --join-parent tokens: the root prompt, then the model's own text from the tree run.
    text = runs["embedded"][0]["parent_text"]
    parent = prompt + (text * (1 + args.join_parent // len(text)))[: args.join_parent - len(tok.encode(prompt))]
    short = "\n".join(join.split("\n")[:6]) + "\n"
    joins = {}
    for label, block in (("demo", join), ("short", short)):
        pairs = [(asyncio.run(join_once(systems["embedded"], parent, block)),
                  asyncio.run(join_once(systems["re-prefill"], parent, block))) for _ in range(7)]
        joins[label] = (Timing(statistics.median(a.wall for a, _ in pairs), statistics.median(a.cpu for a, _ in pairs)),
                        Timing(statistics.median(b.wall for _, b in pairs), statistics.median(b.cpu for _, b in pairs)))
    cfg = model.config
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    shape = f"{args.preset + ' preset, ' if args.preset else ''}hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers"
    report(args, tok, plan, parent, join, short, res, joins, runs["embedded"][0],
           systems["embedded"].engine.cache.dtype, f"{where} · model: Llama {shape}")


def report(args, tok, plan: TreePlan, parent: str, join: str, short: str, res: dict, joins: dict, tree_run: dict,
           kv_dtype: torch.dtype, machine: str) -> None:
    emb, seq, pre = res["embedded"], res["sequential"], res["re-prefill"]
    n = lambda text: len(tok.encode(text, add_special_tokens=False))  # noqa: E731
    kv = str(kv_dtype).removeprefix("torch.")
    print(f"{machine}, {args.dtype} (attention in {kv}), "
          f"{torch.get_num_threads()} thread(s); "
          f"tree: parent {args.parent} tok, 8 children x {args.child} tok, join {n(join)} tok, after {args.after} tok, "
          f"critical path {plan.critical_path} tok; best of {args.rounds} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\nseconds as CPU / wall (one torch thread: CPU time is the work; wall time includes other jobs)\n")
    print("| measure | embedded | sequential generate (a) | re-prefill (b) | ratio, CPU (wall) |")
    print("|---|---|---|---|---|")

    def row(name: str, a: Timing, b: Timing | None, c: Timing, ratio: Timing, note: str) -> None:
        cells = [f"{x.cpu:.3f} / {x.wall:.3f}" if x is not None else "-" for x in (a, b, c)]
        print(f"| {name} | {' | '.join(cells)} | {ratio.cpu:.2f} ({ratio.wall:.2f}) {note} |")

    row("spawn of 8 children, s", emb["spawn"], seq["spawn"], pre["spawn"],
        Timing(seq["spawn"].wall / emb["spawn"].wall, seq["spawn"].cpu / emb["spawn"].cpu), "x faster than (a); target >= 5")
    row("whole tree, s", emb["tree"], seq["tree"], pre["tree"],
        Timing(seq["tree"].wall / emb["tree"].wall, seq["tree"].cpu / emb["tree"].cpu), "x faster than (a)")
    for label, block in (("demo", join), ("short", short)):
        a, c = joins[label]
        row(f"join: {n(block)}-tok join block onto a {len(tok.encode(parent))}-tok parent, s", a, None, c,
            Timing(a.wall / c.wall, a.cpu / c.cpu), "of (b)" + ("; target <= 0.12" if label == "demo" else ""))
    ideal = Timing(plan.critical_path * emb["step"].wall, plan.critical_path * emb["step"].cpu)
    row(f"tree / ideal (critical path {plan.critical_path} tok x batch-1 step "
        f"{1e3 * emb['step'].cpu:.1f} ms CPU)", emb["tree"], seq["tree"], pre["tree"],
        Timing(emb["tree"].wall / ideal.wall, emb["tree"].cpu / ideal.cpu), "embedded / ideal; target <= 1.2")
    print(f"\njoin call in the tree: {tree_run['join_cached']} of {tree_run['join_prompt']} prompt tokens "
          f"served from the parent's cache")


if __name__ == "__main__":
    main()
