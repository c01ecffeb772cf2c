"""A continuous-batching decoder for ``LlamaForCausalLM`` with an explicit, preallocated KV cache.

Every running sequence, whoever added it, advances in one forward pass per ``step()``: sequences
join the batch when added and leave when they finish, so the children of a spawn decode together
with every other live thread. A finished sequence keeps its cache (it is *paused*), so a later
call can ``crop`` it and ``extend`` it with new tokens: that is the join, which keeps the parent's
KV, drops the spawn block and prefills only the join block.

The parts, one module each: ``sequence`` (a sequence and its call), ``kv_cache`` (slots, layout,
eviction), ``model_runner`` (the forward pass), ``sampler`` (next tokens), ``text`` (stop strings).
A step is schedule -> run -> sample -> postprocess.
"""

from __future__ import annotations

import os
import time
from typing import Iterable

import torch
from transformers import LlamaForCausalLM

from apr.runtime.backend import SamplingParams
from apr.runtime.kv_cache import KVCache
from apr.runtime.model_runner import ModelRunner
from apr.runtime.sampler import sample
from apr.runtime.sequence import CallStats, Sequence, Status
from apr.runtime.text import TextStream


class Engine:
    """Token-level batched decoder; single-threaded, driven by ``step()``."""

    def __init__(self, model: LlamaForCausalLM, *, max_slots: int = 32, max_len: int | None = None,
                 stop_token_ids: Iterable[int] = (), token_bytes: list[bytes] | None = None,
                 kv_dtype: torch.dtype | None = None, max_step_tokens: int | None = None):
        if not isinstance(model, LlamaForCausalLM):
            raise TypeError(f"the engine runs LlamaForCausalLM, got {type(model).__name__}")
        if max_slots < 1:
            raise ValueError("max_slots must be at least 1")
        if max_step_tokens is not None and max_step_tokens < 4:
            raise ValueError("max_step_tokens must be at least 4")
        cfg = model.config
        self.model = model.eval()
        self.max_len = min(max_len or cfg.max_position_embeddings, cfg.max_position_embeddings)
        self.max_slots = max_slots
        self.max_step_tokens = max_step_tokens  # None: every prefill whole, in one step
        self.stop_token_ids = frozenset(stop_token_ids)
        self.token_bytes = token_bytes  # per token id, what it contributes to the text (b"" for specials)
        self.cache = KVCache(model, max_slots, self.max_len, kv_dtype)
        self.runner = ModelRunner(model, self.cache)
        self.device = self.runner.device
        self._running: list[Sequence] = []  # in the order they started; the first max_slots run
        self._next_id = 0

    # -- sequence operations ----------------------------------------------------------------
    def add(self, prompt_ids: list[int], params: SamplingParams) -> Sequence:
        """A new sequence that prefills ``prompt_ids`` and decodes with ``params``."""
        seq = self.new_sequence()
        self.extend(seq, prompt_ids, params)
        return seq

    def new_sequence(self) -> Sequence:
        seq = Sequence(self._next_id, [], last_used=time.perf_counter())
        self._next_id += 1
        return seq

    def fork(self, seq: Sequence) -> Sequence:
        """A paused copy of ``seq`` (tokens and cache), e.g. for children sharing its prefix."""
        self._require_paused(seq)
        child = self.new_sequence()
        child.tokens = list(seq.tokens)
        self.cache.copy_into_free_slot(seq, child)
        return child

    def crop(self, seq: Sequence, n: int) -> None:
        """Keep only the first ``n`` tokens of a paused sequence (its cache beyond is dropped)."""
        self._require_paused(seq)
        del seq.tokens[n:]
        seq.n_cached = min(seq.n_cached, n)

    def extend(self, seq: Sequence, ids: list[int], params: SamplingParams | None = None) -> None:
        """Append ``ids`` to a paused sequence; with ``params`` it then decodes a new call.

        Without params the tokens are only queued and get prefilled with the next call. A call
        always feeds at least one token (the last one is re-fed if everything is cached) because
        sampling needs that token's logits. A call with no room to decode finishes at once
        (``context`` or ``length``): check ``seq.finish_reason`` after extending.
        """
        self._require_paused(seq)
        if params is not None and params.stop and self.token_bytes is None:
            raise ValueError("stop strings need token_bytes (what each token id decodes to)")
        if params is not None and not (seq.tokens or ids):
            raise ValueError("cannot decode from an empty sequence")
        seq.tokens.extend(ids)
        if params is None:
            return
        generator = None
        if not params.greedy:
            seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little")
            generator = torch.Generator(device="cpu").manual_seed(seed)
        seq.n_cached = min(seq.n_cached, len(seq.tokens) - 1)
        seq.params, seq.generator = params, generator
        seq.out_ids, seq.finish_reason, seq.error = [], None, None
        seq.out_logprobs = [] if params.logprobs else None
        seq.stats = CallStats(prompt_tokens=len(seq.tokens), submitted=time.perf_counter())
        seq.stream = TextStream(params.stop)
        if len(seq.tokens) >= self.max_len:
            self._finish(seq, "context")  # no room for even one generated token
        elif params.max_tokens <= 0:
            self._finish(seq, "length")
        else:
            seq.status = Status.RUNNING
            self._running.append(seq)

    def cancel(self, seq: Sequence) -> None:
        """Stop a running call now (finish reason ``cancelled``); its tokens so far are kept."""
        if seq.running:
            self._running.remove(seq)
            self._finish(seq, "cancelled")

    def cancel_all(self) -> None:
        for seq in list(self._running):
            self.cancel(seq)

    def free(self, seq: Sequence) -> None:
        """Forget a sequence and release its slot."""
        self.cancel(seq)
        self.cache.release(seq)

    def has_work(self) -> bool:
        return bool(self._running)

    def slots_in_use(self) -> int:
        """Cache rows held by a sequence, running or paused."""
        return self.cache.slots_in_use()

    def _require_paused(self, seq: Sequence) -> None:
        if seq.running:
            raise RuntimeError(f"sequence {seq.id} is running; wait for its call to finish or cancel it")

    # -- the step ----------------------------------------------------------------------------
    def step(self, active: list[Sequence] | None = None) -> list[Sequence]:
        """Advance the scheduled sequences by one step; return those whose call ended.

        ``active``: what ``schedule()`` just returned, for a caller that looked at it first (how many
        tokens it feeds); otherwise the step schedules itself. A failure inside the step is charged
        to the sequences that cause it, so that one caller's call cannot end everyone's: the batch is
        re-run one sequence at a time, and each sequence that fails on its own finishes with
        ``error`` (the exception in ``seq.error``).
        """
        active = self.schedule() if active is None else active
        try:
            return self._step(active)
        except Exception:
            done = []
            for seq in active:
                try:
                    done += self._step([seq])
                except Exception as exc:
                    self._running.remove(seq)
                    self._finish(seq, "error")
                    seq.error = exc
                    done.append(seq)
            return done

    def schedule(self) -> list[Sequence]:
        """This step's sequences, each with ``n_feed`` set: a decoder feeds its one token, a prefill
        all its tokens or, under ``max_step_tokens``, a chunk of what the decoders leave (at least a
        quarter of the budget, so a prompt always advances); a long prompt then spans several steps
        and the decoders beside it keep their pace."""
        active = self._running[: self.max_slots]
        n_decoders = sum(seq.n_pending == 1 for seq in active)
        left = None if self.max_step_tokens is None else max(self.max_step_tokens - n_decoders,
                                                              self.max_step_tokens // 4)
        chosen = []
        for seq in active:
            if seq.n_pending == 1:
                seq.n_feed = 1
            elif left is None:
                seq.n_feed = seq.n_pending
            elif left > 0:
                seq.n_feed = min(seq.n_pending, left)
                left -= seq.n_feed
            else:
                continue  # waits for a later step
            chosen.append(seq)
        return chosen

    @torch.inference_mode()
    def _step(self, active: list[Sequence]) -> list[Sequence]:
        batch, n_decoders = self.cache.pack(active)  # schedule: lay the batch out in the cache
        if not batch:
            return []
        self._mark_started(batch)
        logits = self.runner.forward(batch, n_decoders)  # run
        rows = [i for i, seq in enumerate(batch) if seq.n_feed == seq.n_pending]  # the rest fed a chunk
        tokens, logprobs = sample(logits[rows], [batch[i] for i in rows])
        return self._postprocess(batch, dict(zip(rows, zip(tokens, logprobs))))

    def _mark_started(self, batch: list[Sequence]) -> None:
        start = time.perf_counter()
        for seq in batch:
            if seq.stats.started is None:
                seq.stats.started = start
                seq.stats.cached_tokens = seq.n_cached

    def _postprocess(self, batch: list[Sequence], sampled: dict[int, tuple[int, float]]) -> list[Sequence]:
        """Record each sampled sequence's new token; return those whose call ended with it."""
        done: list[Sequence] = []
        now = time.perf_counter()
        for i, seq in enumerate(batch):
            seq.n_cached += seq.n_feed
            seq.stats.steps += 1
            if i not in sampled:  # a prefill chunk: the prompt continues next step
                continue
            tok, lp = sampled[i]
            if seq.stats.first_token is None:
                seq.stats.first_token = now
            reason = self._append(seq, tok, lp)
            if reason is not None:
                self._running.remove(seq)
                self._finish(seq, reason)
                done.append(seq)
        return done

    def _append(self, seq: Sequence, tok: int, logprob: float) -> str | None:
        """Record a sampled token; return a finish reason if the call ends with it."""
        seq.tokens.append(tok)
        seq.out_ids.append(tok)
        if seq.out_logprobs is not None:
            seq.out_logprobs.append(logprob)
        if tok in self.stop_token_ids:
            return "eos"
        if self.token_bytes is not None and seq.stream.push(self.token_bytes[tok]):
            return "stop"
        if len(seq.out_ids) >= seq.params.max_tokens:
            return "length"
        if len(seq.tokens) >= self.max_len:
            return "context"
        return None

    def _finish(self, seq: Sequence, reason: str) -> None:
        seq.stream.close()
        seq.status = Status.PAUSED
        seq.finish_reason = reason
        seq.stats.finished = time.perf_counter()
        seq.params = None
        seq.generator = None
        seq.last_used = time.perf_counter()
