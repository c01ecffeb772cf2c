"""GRPO over whole thread trees (paper §3.3 / spec §7): roll out, score, advantage, PPO-clip updates.

One step = one rollout batch: ``prompts_per_step`` problems x ``num_generations`` episodes decoded
through the fork-join runtime at ``temperature`` (the paper: 1), a reward per episode,
group-relative advantages, then ``num_iterations`` AdamW steps over every call of every episode
(``apr.rl.episodes``, ``apr.rl.loss``). The first inner step is on-policy, so its forward pass also
records the "old" log-probs that the later ones clip against; the frozen reference scores the same
tokens once per batch.

Weights stay fp32 (AdamW's master copy); the forward runs under bf16 autocast. The loop is written
out rather than using TRL's ``GRPOTrainer``: that trainer samples one completion per prompt, while an
APR episode is a tree of calls whose prompts depend on other calls' outputs (docs/rl.md).

Resume is exact: which problems a step draws and every sampling seed are pure functions of
``(seed, step)``, and a checkpoint holds the fp32 weights and the optimizer state.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections import defaultdict
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from apr.countdown.task import Problem, load_problems
from apr.eval.metrics import score_tree
from apr.models import load_model
from apr.precision import hardware_precision
from apr.rl.config import OLD_NAMES, GRPOConfig, GRPOConfigError, check_config, run_settings
from apr.rl.continuations import join_sequences, join_states
from apr.rl.episodes import TrainSequence, group_advantages, training_sequences
from apr.rl.loss import grpo_loss, make_micro_batch, token_logprobs
from apr.rl.rewards import episode_reward
from apr.eval.metrics import summarise
from apr.rl.rollout import EmbeddedRollouts, Rollouts, ServerRollouts, solve_config
from apr.runtime.device import resolve_device
from apr.tokenizer import load_tokenizer
from apr.train import checkpoint as ckpt
from apr.train.batching import plan_epoch
from apr.train.metrics import MetricsLog, save_run_config


def step_problems(n: int, k: int, seed: int, step: int) -> list[int]:
    """Indices of the ``k`` problems of ``step``: consecutive slices of seeded per-epoch shuffles."""
    orders: dict[int, list[int]] = {}
    picked = []
    for j in range(step * k, (step + 1) * k):
        epoch, pos = divmod(j, n)
        if epoch not in orders:
            orders[epoch] = list(range(n))
            random.Random(f"apr-grpo:{seed}:{epoch}").shuffle(orders[epoch])
        picked.append(orders[epoch][pos])
    return picked


def optimise(policy: PreTrainedModel, reference: PreTrainedModel | None, optimizer: torch.optim.Optimizer,
             seqs: list[TrainSequence], c: GRPOConfig, step: int, pad_id: int) -> dict[str, float]:
    """``num_iterations`` optimizer steps on one rollout batch.

    Returns the PG loss and KL of the first (on-policy) pass, the fraction of tokens clipped in the
    later passes (none can be in the first), the mean grad norm, and how far the sampler's log-probs
    were from the trainer's.
    """
    device = next(policy.parameters()).device
    bf16 = hardware_precision(c.precision, device.type) == "bf16"
    autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=bf16)
    plan = plan_epoch([len(s.ids) for s in seqs], c.tokens_per_batch, c.seed, epoch=step)
    batches = [make_micro_batch([seqs[i] for i in idx], pad_id) for idx in plan]
    passes: list[dict[str, float]] = []
    for _ in range(c.num_iterations):
        totals: dict[str, float] = defaultdict(float)
        for mb in batches:
            inputs, targets, mask = mb.inputs.to(device), mb.targets.to(device), mb.mask.to(device)
            with autocast():
                logp = token_logprobs(policy, inputs, targets, c.temperature)
            if mb.old_logprobs is None:  # first pass: the weights that sampled this batch
                mb.old_logprobs = logp.detach()
                if reference is not None:
                    with torch.no_grad(), autocast():
                        mb.ref_logprobs = token_logprobs(reference, inputs, targets, c.temperature)
                runtime = mb.runtime_logprobs.to(device)
                gap = (runtime - mb.old_logprobs).abs()[mask & ~torch.isnan(runtime)]
                totals["gap_sum"] += float(gap.sum())
                totals["gap_tokens"] += gap.numel()
            loss, part = grpo_loss(logp, mb.old_logprobs, mb.ref_logprobs, mask, mb.advantages.to(device),
                                   mb.weights.to(device), c.epsilon, c.beta)
            loss.backward()
            for k, v in part.items():
                totals[k] += v
        totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        passes.append(totals)
    first, later = passes[0], passes[1:]
    stats = {"pg_loss": first["pg_loss"], "kl": first["kl"], "train_tokens": first["tokens"],
             "grad_norm": sum(p["grad_norm"] for p in passes) / len(passes),
             "clip_frac": sum(p["clipped_tokens"] for p in later) / max(sum(p["tokens"] for p in later), 1)}
    if first["gap_tokens"]:
        stats["logprob_gap"] = first["gap_sum"] / first["gap_tokens"]
    return stats


def _make_rollouts(c: GRPOConfig, policy: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out: Path) -> Rollouts:
    if c.backend == "server":
        return ServerRollouts(c.server_url, c.server_model, tokenizer, policy.config.max_position_embeddings,
                              out / "server-policy")
    return EmbeddedRollouts(policy, tokenizer, c.rollout_dtype, c.max_slots)


def _load_inputs(c: GRPOConfig) -> tuple[PreTrainedTokenizerFast, list[Problem], list[Problem]]:
    try:
        tokenizer = load_tokenizer(c.init_from)  # a checkpoint ships the tokenizer it was trained with
    except (OSError, ValueError) as e:
        raise GRPOConfigError(f"could not load the tokenizer of {c.init_from}: {e}") from None
    train = load_problems(Path(c.problems))
    val = load_problems(Path(c.val_problems))[: c.val_size] if c.val_problems else []
    if not train:
        raise GRPOConfigError(f"{c.problems} holds no problems")
    return tokenizer, train, val


def train_grpo(config: GRPOConfig, on_step: Callable[[int, PreTrainedModel], None] | None = None) -> Path:
    """Train until ``steps`` rollout batches (or ``max_minutes``) are done; return the ``final`` checkpoint.

    ``on_step(step, policy)`` runs after each step and its checkpoint: a hook for tests to stop a run.
    """
    c = config
    check_config(c)
    device = resolve_device(c.device)  # before anything loads: a missing GPU fails fast
    out = Path(c.out)
    if c.resume and (out / ckpt.FINAL).exists():
        done = ckpt.read_meta(out / ckpt.FINAL)
        if done["step"] >= c.steps or (c.max_minutes and done["elapsed_s"] >= c.max_minutes * 60):
            print(f"{out / ckpt.FINAL} exists: the run finished at step {done['step']}; pass a larger --max-steps "
                  "(or --max-minutes) with --resume to train it further")
            return out / ckpt.FINAL
        # The learning rate is constant, so a finished run goes on from its last checkpoint as if never stopped.
    tokenizer, train_set, val_set = _load_inputs(c)
    settings = run_settings(c)
    resume_path, state = ckpt.resume_point(out, c.resume, settings, OLD_NAMES)
    policy = load_model(resume_path or c.init_from, tokenizer).to(device).train()
    reference = None
    if c.beta > 0:
        reference = load_model(c.init_from).to(device).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
    step, elapsed = 0, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
    out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out / "metrics.jsonl", True, step, c.tensorboard)
    save_run_config(out, asdict(c))
    rollouts = _make_rollouts(c, policy, tokenizer, out)
    budget_s = c.max_minutes * 60 if c.max_minutes else math.inf
    bar = tqdm(total=c.steps, initial=step, disable=not c.progress, unit="step", dynamic_ncols=True)
    run_start, elapsed_before = time.perf_counter(), elapsed

    def validate() -> None:
        t0 = time.perf_counter()
        trees = rollouts.solve([p.prompt("apr", c.sub_call_budget) for p in val_set],
                               solve_config(c.limits, c.max_tokens, seed=None))
        scores = [score_tree(t, p) for t, p in zip(trees, val_set)]
        summary = {f"val_{k}": round(v, 4) for k, v in summarise(scores).items()}
        metrics.write(step=step, **summary, val_s=round(time.perf_counter() - t0, 1))
        bar.write(f"step {step}: greedy accuracy {summary['val_accuracy']:.3f} on {len(val_set)} held-out problems")

    def save(path: Path, with_state: bool) -> None:
        meta = {"step": step, "elapsed_s": round(elapsed, 1), "config": asdict(c), "trained_with": "grpo"}
        train_state = {"optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed,
                       "config": settings} if with_state else None
        ckpt.save_checkpoint(path, policy, tokenizer, meta, train_state)
        ckpt.prune_checkpoints(out, c.keep_checkpoints)

    if val_set and state is None:
        rollouts.sync(policy)
        validate()
    while step < c.steps and elapsed < budget_s:
        t0 = time.perf_counter()
        rollouts.sync(policy)
        problems = [train_set[i] for i in step_problems(len(train_set), c.prompts_per_step, c.seed, step)
                    for _ in range(c.num_generations)]
        seed = zlib.crc32(f"apr-grpo:{c.seed}:{step}".encode())
        sampling = solve_config(c.limits, c.max_tokens, seed, c.temperature)
        trees = rollouts.solve([p.prompt("apr", c.sub_call_budget) for p in problems], sampling)
        t1 = time.perf_counter()
        scores = [score_tree(t, p) for t, p in zip(trees, problems)]
        rewards = torch.tensor([episode_reward(s, c.rewards) for s in scores]).view(-1, c.num_generations)
        advantages = group_advantages(rewards, c.advantage).flatten().tolist()
        # A backend failure is not the policy's doing: such episodes are not trained (the reference did).
        errored = [any(t.finish_reason == "error" for t in tree.walk()) for tree in trees]
        seqs = training_sequences(trees, [None if e else a for a, e in zip(advantages, errored)], tokenizer,
                                  keep_zero_advantage=c.beta > 0)
        join_stats: dict[str, float] = {}
        if c.join_samples:
            t_join = time.perf_counter()
            states = [st for st in join_states(trees, scores) if not errored[st.episode]]
            samples = rollouts.continue_from([st.prompt for st in states], c.join_samples, sampling.sampling)
            joins = join_sequences(states, samples, problems, tokenizer, len(trees), c.advantage, c.join_weight)
            seqs += joins.sequences
            join_stats = {"join_groups": joins.groups, "join_trained": joins.trained,
                          "join_accuracy": joins.accuracy, "join_s": time.perf_counter() - t_join}
        stats = optimise(policy, reference, optimizer, seqs, c, step, tokenizer.pad_token_id) if seqs else {}
        step += 1
        elapsed = elapsed_before + time.perf_counter() - run_start
        record = {"step": step, "reward": rewards.mean().item(),
                  "flat_groups": (rewards.std(dim=1) == 0).float().mean().item(), "errored": sum(errored),
                  **summarise(scores), **join_stats, **stats, "sequences": len(seqs),
                  "rollout_s": t1 - t0, "train_s": time.perf_counter() - t1, "elapsed_s": elapsed}
        metrics.write(**{k: round(v, 5) if isinstance(v, float) else v for k, v in record.items()})
        bar.update(1)
        bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{stats.get('kl', 0.0):.2e}", refresh=False)
        finished = step >= c.steps or elapsed >= budget_s
        if val_set and (step % c.val_every == 0 or finished):
            rollouts.sync(policy)
            validate()
        if step % c.save_every == 0 or finished:  # the last one too: --resume with more steps goes on from it
            save(ckpt.checkpoint_dir(out, step), with_state=True)
        if on_step is not None:
            on_step(step, policy)
    bar.close()
    metrics.close()
    save(out / ckpt.FINAL, with_state=False)
    return out / ckpt.FINAL
