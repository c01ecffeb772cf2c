"""Benchmark the embedded fork-join engine against the two ways the paper's setup would run a tree.

Same model, same tree, measured in one run:
* embedded: our engine, children batched, the parent's join reuses its KV cache (prefills the join only);
* (a) sequential: every call through transformers' ``generate``, one after another, full prompt each time;
* (b) re-prefill: our engine and batching, but every call re-prefills its whole prompt (the paper's
  client-side orchestration on a batching server without a prefix cache).

The model is a random-weight Llama of realistic size for this CPU (hidden 512, 8 layers, bf16). Its
output layer is restricted to lowercase letters and newlines, whose text re-tokenizes to the same
tokens, as a trained model's text does (a random model's byte soup would not), and it never picks
EOS, so every call decodes exactly its planned length. The tree comes from a solver demonstration
whose root spawns 8 children (their prompts and the join block are real); decode lengths are set
by flags. The calls follow the orchestrator: parent decodes, its last tokens stand for the spawn
block and are dropped at the join, the 8 children decode concurrently, the parent continues from
``context before the spawn + join block``.

    python benchmarks/runtime.py                 # ~10 minutes on one shared CPU core
    python benchmarks/runtime.py --child 128     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import string
import time
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from apr import grammar as g
from apr.countdown.search import AprSettings, apr_search
from apr.runtime.backend import Backend, SamplingParams
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.reference import SequentialBackend
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


def benchmark_model(tok, hidden: int, layers: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                      num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                      max_position_embeddings=2048, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    allowed = [tok.convert_tokens_to_ids(c) for c in string.ascii_lowercase + "\n"]
    with torch.no_grad():
        keep = model.lm_head.weight[allowed].clone() * 8
        model.lm_head.weight.zero_()  # every other token (EOS included) gets logit 0 and never wins
        model.lm_head.weight[allowed] = keep
    return model


async def run_tree(backend: Backend, plan: TreePlan) -> dict[str, float]:
    """One tree, as the orchestrator would call the backend. Returns phase timings (seconds)."""
    t0 = time.perf_counter()
    first = await backend.generate("root", plan.prompt, SamplingParams(max_tokens=plan.parent_tokens))
    t1 = time.perf_counter()
    children = await asyncio.gather(*(
        backend.generate(f"child{i}", p, SamplingParams(max_tokens=plan.child_tokens))
        for i, p in enumerate(plan.child_prompts)))
    t2 = time.perf_counter()
    for i in range(len(children)):
        backend.release(f"child{i}")
    before_spawn = first.text[: -SPAWN_TOKENS]
    after = await backend.generate("root", plan.prompt + before_spawn + plan.join,
                                   SamplingParams(max_tokens=plan.after_tokens))
    t3 = time.perf_counter()
    backend.release("root")
    assert len(first.token_ids) == plan.parent_tokens and all(len(c.token_ids) == plan.child_tokens for c in children)
    return {"tree": t3 - t0, "children": t2 - t1, "join_prefill": after.prefill_seconds,
            "join_cached": after.cached_tokens, "join_prompt": after.prompt_tokens,
            "batch1_step": first.decode_seconds / (len(first.token_ids) - 1), "parent_text": first.text}


async def join_cost(backend: Backend, parent: str, join: str, repeats: int) -> float:
    """Median prefill seconds of a join onto a session holding ``parent`` (its spawn block included).

    The parent's context is prefilled rather than decoded: the cache holds the same tokens either
    way, and the measurement is only the join call's prefill.
    """
    joined = parent[: -SPAWN_TOKENS] + join
    times = []
    for _ in range(repeats):
        await backend.generate("parent", parent, SamplingParams(max_tokens=1))  # the parent at its spawn
        out = await backend.generate("parent", joined, SamplingParams(max_tokens=1))
        times.append(out.prefill_seconds)
    backend.release("parent")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--parent", type=int, default=400, help="tokens the parent decodes before its spawn")
    parser.add_argument("--child", type=int, default=256, help="tokens each of the 8 children decodes")
    parser.add_argument("--after", type=int, default=64, help="tokens the parent decodes after the join")
    parser.add_argument("--join-parent", type=int, default=1000, help="parent tokens for the join measurement")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on a shared machine 2 threads spin-wait against other jobs and run "
                             "up to ~50x slower than 1 (measured), so 1 is the default")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tok = load_tokenizer()
    model = benchmark_model(tok, args.hidden, args.layers)
    prompt, child_prompts, join = eight_child_demo()
    plan = TreePlan(prompt, child_prompts, join, args.parent, args.child, args.after)
    systems = {
        "embedded": EmbeddedBackend(model, tok, max_slots=16),
        "sequential generate": SequentialBackend(model, tok),
        "re-prefill": EmbeddedBackend(model, tok, max_slots=16, reuse_cache=False),
    }
    asyncio.run(run_tree(systems["embedded"], TreePlan(prompt, child_prompts, join, 16, 16, 16)))  # warm up
    results = {name: asyncio.run(run_tree(b, plan)) for name, b in systems.items()}
    # A parent of --join-parent tokens: the root prompt, then the model's own text from the tree run.
    text = results["embedded"]["parent_text"]
    filler = (text * (1 + args.join_parent // max(1, len(text))))[: args.join_parent - len(tok.encode(prompt))]
    parent = prompt + filler
    join_64 = "\n".join(join.split("\n")[:6]) + "\n"
    join_ms = {
        (name, label): 1e3 * asyncio.run(join_cost(systems[name], parent, text_, repeats=5))
        for name in ("embedded", "re-prefill") for label, text_ in (("demo", join), ("short", join_64))
    }
    emb, seq, pre = results["embedded"], results["sequential generate"], results["re-prefill"]
    ideal = plan.critical_path * emb["batch1_step"]
    n_join, n_short = tok.encode(join, add_special_tokens=False), tok.encode(join_64, add_special_tokens=False)

    print(f"model: Llama hidden {args.hidden}, {args.layers} layers, bf16, {torch.get_num_threads()} threads; "
          f"tree: parent {args.parent} tok, 8 children x {args.child} tok, join {len(n_join)} tok, "
          f"after {args.after} tok; critical path {plan.critical_path} tok")
    rows = [
        ("spawn of 8 children, wall s", emb["children"], seq["children"], pre["children"],
         f"{seq['children'] / emb['children']:.1f}x faster than sequential (target >= 4.5x)"),
        ("whole tree, wall s", emb["tree"], seq["tree"], pre["tree"],
         f"{seq['tree'] / emb['tree']:.1f}x faster than sequential"),
        (f"join prefill, {len(n_join)}-tok join on a {len(tok.encode(parent))}-tok parent, ms",
         join_ms["embedded", "demo"], None,
         join_ms["re-prefill", "demo"], f"{join_ms['embedded', 'demo'] / join_ms['re-prefill', 'demo']:.2f}x of re-prefill"
         " (target <= 0.15x)"),
        (f"join prefill, {len(n_short)}-tok join, ms", join_ms["embedded", "short"], None,
         join_ms["re-prefill", "short"], f"{join_ms['embedded', 'short'] / join_ms['re-prefill', 'short']:.2f}x of re-prefill"),
        ("tree wall / ideal (critical path x batch-1 step)", emb["tree"] / ideal, seq["tree"] / ideal,
         pre["tree"] / ideal, f"ideal {ideal:.2f}s = {plan.critical_path} tok x {1e3 * emb['batch1_step']:.1f} ms"
         " (target <= 1.3)"),
    ]
    print()
    print("| measure | embedded | sequential generate (a) | re-prefill (b) | ratio |")
    print("|---|---|---|---|---|")
    for name, a, b, c, note in rows:
        cells = [f"{x:.3f}" if x is not None else "-" for x in (a, b, c)]
        print(f"| {name} | {' | '.join(cells)} | {note} |")
    print(f"\njoin call in the tree: {emb['join_cached']} of {emb['join_prompt']} prompt tokens from cache (embedded), "
          f"{pre['join_cached']} (re-prefill)")


if __name__ == "__main__":
    main()
