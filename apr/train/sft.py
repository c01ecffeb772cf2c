"""Supervised fine-tuning from scratch on thread-level SFT data (paper §4, spec §5.2).

The loop is written out rather than using ``transformers.Trainer``: batches have a variable number
of rows (a token budget, see ``batching``), the learning rate follows a step-or-time progress
(``--max-minutes``), and resume must replay the exact data order from the step number alone. Those
three fight the Trainer's fixed-batch sampler and callbacks; the loop itself is ~100 lines.
``accelerate`` does what it is good at: process groups, device placement, DDP wrapping, reductions.

Loss normalisation: every step divides the summed token loss by the number of loss-carrying tokens
of the whole step (all micro-batches on all ranks), so a step is the same computation whether it is
split over ranks or over accumulation micro-batches.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, get_args

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from apr.models import build_model, check_tokenizer, get_preset, load_model
from apr.models.trained_range import TrainedRange, trained_range
from apr.tokenizer import load_tokenizer
from apr.train import checkpoint as ckpt
from apr.train.batching import IGNORE, Batch, collate, iterate_steps, plan_epoch
from apr.train.config import RESUME_FREE, LossOn, SFTConfig
from apr.train.data import SFTInputError, apply_length_policy, column, load_rows, split_validation, tokenize_rows
from apr.train.memory import limit_heap_fragmentation
from apr.runtime.device import resolve_device
from apr.train.metrics import MetricsLog, save_run_config
from apr.precision import Precision, hardware_precision


def _check_config(c: SFTConfig) -> None:
    get_preset(c.preset)
    if c.max_steps is None and c.max_minutes is None:
        raise SFTInputError("give a budget: --max-steps and/or --max-minutes")
    positive = {"tokens_per_batch": c.tokens_per_batch, "grad_accum": c.grad_accum, "lr": c.lr,
                "eval_every": c.eval_every, "save_every": c.save_every, "keep_checkpoints": c.keep_checkpoints,
                "log_every": c.log_every, "max_steps": 1 if c.max_steps is None else c.max_steps,
                "max_minutes": 1 if c.max_minutes is None else c.max_minutes}
    bad = [k for k, v in positive.items() if v <= 0]
    if bad:
        raise SFTInputError(f"must be positive: {', '.join(bad)}")
    if c.loss_on not in ("all", "completion"):
        raise SFTInputError(f"loss_on must be 'all' or 'completion', got {c.loss_on!r}")
    if c.precision not in (*get_args(Precision), None):
        raise SFTInputError(f"precision must be one of {', '.join(get_args(Precision))}, got {c.precision!r}")
    if not 0 <= c.val_fraction < 1:
        raise SFTInputError(f"val_fraction must be in [0, 1), got {c.val_fraction}")
    if not 0 <= c.min_lr_ratio <= 1 or c.warmup_steps < 0:
        raise SFTInputError("min_lr_ratio must be in [0, 1] and warmup_steps >= 0")


def _absolute(paths: list[str]) -> list[str]:
    return [str(Path(p).resolve()) for p in paths]


def lr_at(c: SFTConfig, step: int, progress: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` to ``lr * min_lr_ratio`` as progress goes 0 -> 1.

    ``progress`` is the larger of step/max_steps and elapsed/max_minutes, so a time-budgeted run
    still ends fully decayed.
    """
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass
class _Data:
    train: Any  # datasets.Dataset with input_ids, n_prompt, length
    val: Any | None
    report: list[str]
    task: TrainedRange | None  # the problems among the training rows


def _prepare_data(c: SFTConfig, tokenizer: PreTrainedTokenizerBase, max_tokens: int, accelerator: Accelerator) -> _Data:
    report = []
    with accelerator.main_process_first():  # rank 0 fills the datasets cache, the others reuse it
        rows = load_rows(c.data)
        task = TrainedRange.from_prompts(column(rows, "prompt"))
        train = tokenize_rows(rows, tokenizer)
        val = tokenize_rows(load_rows(c.val_data), tokenizer) if c.val_data else None
    if val is None and c.val_fraction > 0:
        train, val = split_validation(train, c.val_fraction, c.seed)

    def police(name: str, ds: Any) -> Any:
        ds, line = apply_length_policy(ds, max_tokens, c.long_policy)
        if line:
            report.append(f"{name}: {line}")
        return ds

    train = police("train", train)
    val = police("val", val) if val is not None else None
    longest = max(column(train, "length"))
    if longest > c.tokens_per_batch:
        raise SFTInputError(f"--tokens-per-batch {c.tokens_per_batch} is smaller than the longest sequence "
                           f"({longest} tokens); raise it to at least {longest}")
    keep = ["input_ids", "n_prompt", "length"]
    return _Data(train.select_columns(keep), val.select_columns(keep) if val is not None else None, report, task)


def _loss_sum(model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
    logits = model(input_ids=batch.inputs.to(device), use_cache=False).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.to(device).flatten(),
                           ignore_index=IGNORE, reduction="sum")


def _fetch(ds: Any, idx: list[int], pad_id: int, loss_on: LossOn) -> Batch:
    rows = ds[idx]
    return collate(rows["input_ids"], rows["n_prompt"], pad_id, loss_on)


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch], n_targets: torch.Tensor,
          accelerator: Accelerator, autocast: Callable[[], Any], max_grad_norm: float) -> tuple[torch.Tensor, float]:
    """One optimizer step over this rank's micro-batches; returns its summed token loss and the grad norm."""
    loss_sum = torch.zeros((), device=accelerator.device)
    for i, batch in enumerate(batches):
        with nullcontext() if i == len(batches) - 1 else accelerator.no_sync(model):  # all-reduce once per step
            with autocast():
                part = _loss_sum(model, batch, accelerator.device)
            # DDP averages gradients over ranks, so scale back up to a sum over the whole step.
            accelerator.backward(part * accelerator.num_processes / n_targets)
        loss_sum += part.detach()
    grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), max_grad_norm))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum, grad_norm


@torch.no_grad()
def evaluate(model: PreTrainedModel, val: Any, c: SFTConfig, pad_id: int, accelerator: Accelerator) -> float:
    """Mean per-token loss over up to ``eval_tokens`` validation tokens (the same ones every time)."""
    lengths, plan, total = column(val, "length"), [], 0
    for b in plan_epoch(lengths, c.tokens_per_batch, c.seed, epoch=0):
        if total >= c.eval_tokens:
            break
        plan.append(b)
        total += sum(lengths[i] for i in b)
    model.eval()
    sums = torch.zeros(2, device=accelerator.device)
    for idx in plan[accelerator.process_index::accelerator.num_processes]:
        batch = _fetch(val, idx, pad_id, c.loss_on)
        sums += torch.stack([_loss_sum(model, batch, accelerator.device).detach(),
                             torch.tensor(float(batch.n_targets), device=accelerator.device)])
    model.train()
    sums = accelerator.reduce(sums, "sum")
    return (sums[0] / sums[1].clamp(min=1)).item()


def _context_length(c: SFTConfig, init: Path | None, tokenizer: PreTrainedTokenizerBase, resuming: bool) -> int:
    """The model's context; for an existing checkpoint, also check that the tokenizer fits it.

    A run that starts from a checkpoint may lengthen its window (RoPE positions are computed, not
    learned, so the model loads as it is and learns the new positions); a resumed run keeps its own.
    """
    if init is None:
        return c.context_length or get_preset(c.preset).context_length
    if not (init / "config.json").is_file():
        raise SFTInputError(f"{init} is not a model checkpoint (no config.json)")
    config = AutoConfig.from_pretrained(init)
    check_tokenizer(config, tokenizer, where=f"checkpoint {init}", checkpoint=init)
    own = config.max_position_embeddings
    if c.context_length and (c.context_length < own or (resuming and c.context_length != own)):
        how = "a resumed run keeps its window" if resuming else "a window can be lengthened, not shortened"
        raise SFTInputError(f"--context-length {c.context_length} differs from {init}'s {own} ({how}); "
                            f"drop --context-length or pass one >= {own}")
    return max(own, c.context_length or 0)


def _run_settings(c: SFTConfig, world_size: int) -> dict[str, Any]:
    d = {k: v for k, v in asdict(c).items() if k not in RESUME_FREE}
    d.update(data=_absolute(c.data), val_data=_absolute(c.val_data), betas=list(c.betas), world_size=world_size)
    if c.init_from:
        d["init_from"] = str(Path(c.init_from).resolve())
    return d


def _load_tokenizer(path: str | None) -> PreTrainedTokenizerBase:
    try:
        return load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise SFTInputError(f"could not load tokenizer {path}: {e}") from None


def train_sft(config: SFTConfig, on_step: Callable[[int, PreTrainedModel], None] | None = None) -> Path:
    """Train until the step or time budget runs out; return the ``final`` checkpoint directory.

    ``on_step(step, model)`` runs on every rank after each optimizer step (and its checkpoint, if
    any) with the unwrapped model: a hook for custom evaluation, or for tests to stop a run. All input is
    checked (preset, tokenizer vs checkpoint, data files, lengths) before the model is built.
    """
    limit_heap_fragmentation()
    c = config
    _check_config(c)
    # cpu=True on a CPU: otherwise accelerate ignores torchrun's env on a CPU box and trains each rank alone.
    # Autocast is ours, not accelerate's mixed_precision: that one is process-global and fixed at first use.
    device = resolve_device(c.device)
    if device.type == "cuda" and device.index is not None and "LOCAL_RANK" not in os.environ:
        torch.cuda.set_device(device)  # one process on a chosen GPU; under torchrun each rank takes its own
    accelerator = Accelerator(cpu=device.type == "cpu")
    precision = hardware_precision(c.precision, accelerator.device.type)
    autocast = partial(torch.autocast, accelerator.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    out, main = Path(c.out), accelerator.is_main_process
    accelerator.print(f"apr train sft: {c.preset} model on {', '.join(c.data)} -> {out} ({precision}); checking the data")
    if c.max_steps is not None and c.max_steps <= c.warmup_steps:
        accelerator.print(f"warning: --max-steps {c.max_steps} ends inside the {c.warmup_steps}-step warmup: the "
                          "learning rate never reaches its peak; lower --warmup-steps")
    if c.resume and (out / ckpt.FINAL).exists():
        done = ckpt.read_meta(out / ckpt.FINAL).get("step", "?")
        accelerator.print(f"{out / ckpt.FINAL} exists: the run already finished (step {done}). A finished run is not "
                          "extended (a larger budget changes its learning-rate schedule): to train further, start a "
                          f"new run with --init-from {out / ckpt.FINAL}")
        return out / ckpt.FINAL
    tokenizer = _load_tokenizer(c.tokenizer)
    if out.exists() and not out.is_dir():
        raise SFTInputError(f"--out {out} is a file, not a folder")
    settings = _run_settings(c, accelerator.num_processes)
    try:
        resume_path, state = ckpt.resume_point(out, c.resume, settings)
    except ValueError as e:
        raise SFTInputError(str(e)) from None
    init = resume_path or (Path(c.init_from) if c.init_from else None)
    n_ctx = _context_length(c, init, tokenizer, resuming=resume_path is not None)
    # A sequence of n tokens feeds n - 1 inputs, so it fits a context of n - 1 positions (as in the paper).
    data = _prepare_data(c, tokenizer, n_ctx + 1, accelerator)
    for line in data.report:
        accelerator.print(line)
    # What the model will have seen: this run's problems and, for a run that starts from a checkpoint, its own.
    task = data.task.union(trained_range(init)) if data.task is not None and init is not None else data.task

    model = load_model(init) if init else build_model(c.preset, tokenizer, c.context_length, seed=c.seed)
    model.config.max_position_embeddings = n_ctx
    decay = [p for p in model.parameters() if p.ndim >= 2]  # no weight decay on norm gains
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=c.lr, betas=c.betas)
    step, elapsed, tokens_seen = 0, 0.0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, tokens_seen = state["step"], state["elapsed"], state["tokens"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        accelerator.print(f"resuming {resume_path} at step {step}")
    else:
        torch.manual_seed(c.seed)
        random.seed(c.seed)
    model, optimizer = accelerator.prepare(model, optimizer)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out / "metrics.jsonl", main, step, c.tensorboard)
    if main:
        save_run_config(out, asdict(c))
    pad_id = tokenizer.pad_token_id
    budget_s = c.max_minutes * 60 if c.max_minutes else math.inf

    def save(path: Path, with_state: bool) -> None:
        accelerator.wait_for_everyone()
        if main:
            meta = {"step": step, "tokens": tokens_seen, "elapsed_s": round(elapsed, 1), "config": asdict(c)}
            if task is not None:
                meta["task"] = task.to_dict()
            train_state = {"optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed, "tokens": tokens_seen,
                           "python_rng": random.getstate(), "torch_rng": torch.get_rng_state(),
                           "config": settings} if with_state else None
            ckpt.save_checkpoint(path, accelerator.unwrap_model(model), tokenizer, meta, train_state)
            ckpt.prune_checkpoints(out, c.keep_checkpoints)
        accelerator.wait_for_everyone()

    def done() -> bool:
        return (c.max_steps is not None and step >= c.max_steps) or elapsed >= budget_s

    steps = iterate_steps(column(data.train, "length"), c.tokens_per_batch, c.seed, world_size=accelerator.num_processes,
                          rank=accelerator.process_index, grad_accum=c.grad_accum, start_step=step)
    bar = tqdm(total=c.max_steps, initial=step, disable=not (main and c.progress), unit="step", dynamic_ncols=True)
    run_start, elapsed_before = time.perf_counter(), elapsed
    window_t, window_tokens = run_start, 0
    model.train()
    while not done():
        epoch, micro = next(steps)
        batches = [_fetch(data.train, idx, pad_id, c.loss_on) for idx in micro]
        n_targets = accelerator.reduce(torch.tensor(float(sum(b.n_targets for b in batches)),
                                                    device=accelerator.device), "sum").clamp(min=1)
        progress = max(step / c.max_steps if c.max_steps else 0.0, elapsed / budget_s)
        lr = lr_at(c, step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum, grad_norm = _step(model, optimizer, batches, n_targets, accelerator, autocast, c.max_grad_norm)
        # One reduction gives the step's loss, its token count, and rank 0's clock (the only one that counts).
        clock = elapsed_before + time.perf_counter() - run_start if main else 0.0
        n_tokens = float(sum(b.n_tokens for b in batches))
        totals = accelerator.reduce(torch.tensor([loss_sum.item(), n_tokens, clock], dtype=torch.float64,
                                                 device=accelerator.device), "sum")
        step, elapsed = step + 1, totals[2].item()
        tokens_seen += int(totals[1].item())
        window_tokens += int(totals[1].item())
        bar.update(1)
        if step % c.log_every == 0 or done():
            now = time.perf_counter()
            tps = window_tokens / (now - window_t)
            loss = (totals[0] / n_targets).item()
            metrics.write(step=step, epoch=epoch, loss=round(loss, 5), lr=lr, grad_norm=round(grad_norm, 4),
                          tokens=tokens_seen, tokens_per_s=round(tps, 1), elapsed_s=round(elapsed, 1))
            eta = min(((c.max_steps or math.inf) - step) * elapsed / max(step, 1), budget_s - elapsed)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}",
                            eta=time.strftime("%H:%M:%S", time.gmtime(max(eta, 0))), refresh=False)
            window_t, window_tokens = now, 0
        if data.val is not None and (step % c.eval_every == 0 or done()):
            with autocast():
                val_loss = evaluate(accelerator.unwrap_model(model), data.val, c, pad_id, accelerator)
            metrics.write(step=step, val_loss=round(val_loss, 5), elapsed_s=round(elapsed, 1))
            if main and c.progress:
                bar.write(f"step {step}: val loss {val_loss:.4f}")
        if step % c.save_every == 0 and not done():
            save(ckpt.checkpoint_dir(out, step), with_state=True)
        if on_step is not None:
            on_step(step, accelerator.unwrap_model(model))
    bar.close()
    metrics.close()
    if step < c.warmup_steps:
        accelerator.print(f"warning: the run ended inside its warmup (step {step} of {c.warmup_steps}): the learning "
                          "rate never reached its peak; give a larger budget or fewer --warmup-steps")
    save(out / ckpt.FINAL, with_state=False)
    accelerator.end_training()
    return out / ckpt.FINAL
