"""The in-process Backend: sessions on top of the engine, batched by one driver loop.

Each session (one per thread) maps to an engine sequence that keeps its KV cache between calls.
A call tokenizes the whole prompt, keeps the longest common token prefix with what the session
(or ``fork_from``) already holds, crops the rest and prefills only the new tokens. Matching on the
prompt's own tokenization rather than on decoded text makes a reused cache hold exactly what a
fresh prefill of the same text would hold, so a KV-reuse join and a re-prefill see the same tokens;
where a model wrote a non-canonical tokenization of its text, the match simply ends there.

All concurrent ``generate`` calls of an event loop join one engine batch: the first call starts a
driver task that steps the engine while any call is pending, yielding to the loop between steps so
that threads woken by a finished call (a parent after its children, children after a spawn) add
their next call before the following step.

With ``off_loop_tokens`` (a server's choice) a step that feeds at least that many tokens (a long
prefill) runs on a worker thread, so the loop answers other requests meanwhile; short decode steps
stay on the loop, where a thread hand-off would cost a large share of them. The engine is then
touched by one side at a time: a call arriving mid-step waits for the step to end before it adds its
sequence, and a cancel or release mid-step is applied right after it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.codec import TokenCodec, common_prefix
from apr.runtime.engine import Engine
from apr.runtime.model_runner import transpose_weight_storage
from apr.runtime.sequence import Sequence



class EmbeddedBackend:
    """Backend over our own engine. ``reuse_cache=False`` re-prefills every call (the baseline)."""

    def __init__(self, model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, *, max_slots: int = 32,
                 max_len: int | None = None, dtype: torch.dtype | None = None, reuse_cache: bool = True,
                 off_loop_tokens: int | None = None, max_step_tokens: int | None = None):
        if dtype is not None:
            # Parameters only: Module.to() would also round RoPE's fp32 inv_freq buffer, moving the
            # rotary cos/sin by up to 0.5 at position 4000 (from_pretrained keeps buffers in fp32).
            for p in model.parameters():
                p.data = p.data.to(dtype)
        self.codec = TokenCodec(tokenizer)
        self.engine = Engine(model, max_slots=max_slots, max_len=max_len, max_step_tokens=max_step_tokens,
                             stop_token_ids=[self.codec.eos_token_id], token_bytes=self.codec.token_bytes)
        self.context_length = self.engine.max_len
        self.reuse_cache = reuse_cache
        self._sessions: dict[str, Sequence] = {}
        self._pending: dict[int, asyncio.Future[Generation]] = {}  # engine sequence id -> waiter
        self._watched: dict[int, tuple[Sequence, Callable[[str], None]]] = {}  # streamed calls
        self._driver: asyncio.Task | None = None
        self.off_loop_tokens = off_loop_tokens
        self._stepper: ThreadPoolExecutor | None = None  # the worker thread of off-loop steps
        self._stepping = False  # a step is running on the worker thread
        self._step_done: asyncio.Event | None = None
        self._after_step: list[Callable[[], None]] = []  # engine changes asked for mid-step

    @classmethod
    def from_checkpoint(cls, path: Path, *, max_slots: int = 32, tokenizer: str | Path | None = None,
                        dtype: torch.dtype = torch.float32, device: str = "cpu",
                        max_step_tokens: int | None = None) -> EmbeddedBackend:
        """A checkpoint folder on the engine on ``device`` (see ``apr.runtime.device``), with
        ``tokenizer`` or else the checkpoint's own (else the bundled one); the tokenizer is checked
        against the checkpoint before the weights load."""
        from apr.models.loading import load_model
        from apr.runtime.device import resolve_device
        from apr.tokenizer import checkpoint_tokenizer

        where = resolve_device(device)  # before the weights load: a missing GPU fails fast
        tok = checkpoint_tokenizer(path, tokenizer)
        model = load_model(path, tok, dtype=dtype).to(where)
        transpose_weight_storage(model)  # this engine owns the model
        return cls(model, tok, max_slots=max_slots, max_step_tokens=max_step_tokens)

    # -- Backend protocol ------------------------------------------------------------------------
    async def generate(self, session: str, prompt: str, params: SamplingParams,
                       fork_from: str | None = None, on_text: Callable[[str], None] | None = None,
                       prompt_ids: list[int] | None = None) -> Generation:
        """Decode one call. ``on_text`` (streaming) gets the call's whole text so far after every step;
        ``prompt_ids``: ``prompt`` already tokenized (``codec.encode``), for a caller that had to."""
        ids = prompt_ids if prompt_ids is not None else self.codec.encode(prompt)
        while self._stepping:  # the engine is the worker thread's until the step ends
            await self._step_done.wait()
        seq = self._sequence_for(session, ids, fork_from)
        keep = common_prefix(seq.tokens, ids)
        self.engine.crop(seq, keep)
        self.engine.extend(seq, ids[keep:], params)
        if seq.finish_reason is not None:  # no room to decode at all
            return seq.result()
        waiter = asyncio.get_running_loop().create_future()
        self._pending[seq.id] = waiter
        if on_text is not None:
            self._watched[seq.id] = (seq, on_text)
        self._ensure_driver()
        try:
            return await waiter
        except asyncio.CancelledError:
            self._pending.pop(seq.id, None)
            self._when_idle(lambda: self.engine.cancel(seq))
            raise
        finally:
            self._watched.pop(seq.id, None)

    def release(self, session: str) -> None:
        seq = self._sessions.pop(session, None)
        if seq is not None:
            waiter = self._pending.pop(seq.id, None)
            self._when_idle(lambda: self.engine.free(seq))
            if waiter is not None and not waiter.done():
                waiter.set_result(seq.result())

    def count_tokens(self, text: str) -> int:
        return self.codec.count(text)

    # -- sync convenience ------------------------------------------------------------------------
    def generate_batch(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """Decode independent prompts together from sync code (e.g. a batch of SoS+ traces)."""
        async def run() -> list[Generation]:
            names = [f"batch/{id(prompts)}/{i}" for i in range(len(prompts))]
            try:
                return await asyncio.gather(*(self.generate(n, p, params) for n, p in zip(names, prompts)))
            finally:
                for n in names:
                    self.release(n)
        return asyncio.run(run())

    # -- internals -------------------------------------------------------------------------------
    def _sequence_for(self, session: str, ids: list[int], fork_from: str | None) -> Sequence:
        """The engine sequence to continue: the session's own, a fork of ``fork_from``, or a new one."""
        own = self._sessions.get(session)
        if own is not None and own.running:
            raise RuntimeError(f"session {session!r} already has a call in flight")
        if not self.reuse_cache:
            if own is not None:
                self.engine.free(own)
            own = None
        source = self._sessions.get(fork_from) if fork_from and self.reuse_cache else None
        if source is not None and not source.running and (
                own is None or common_prefix(source.tokens, ids) > common_prefix(own.tokens, ids)):
            if own is not None:
                self.engine.free(own)
            own = self.engine.fork(source)
        if own is None:
            own = self.engine.new_sequence()
        self._sessions[session] = own
        return own

    def _ensure_driver(self) -> None:
        loop = asyncio.get_running_loop()
        if self._driver is not None and not self._driver.done():
            if self._driver.get_loop() is not loop:
                raise RuntimeError("EmbeddedBackend is already being driven by another event loop")
            return
        self._step_done = asyncio.Event()
        self._driver = loop.create_task(self._drive())

    def _when_idle(self, change: Callable[[], None]) -> None:
        """Apply an engine change now, or right after the step in flight."""
        if self._stepping:
            self._after_step.append(change)
        else:
            change()

    async def _step(self) -> list[Sequence]:
        batch = self.engine.schedule()
        if self.off_loop_tokens is None or sum(seq.n_feed for seq in batch) < self.off_loop_tokens:
            return self.engine.step(batch)
        if self._stepper is None:  # torch's thread count is per thread: the worker takes this one's
            self._stepper = ThreadPoolExecutor(1, "apr-engine", torch.set_num_threads, (torch.get_num_threads(),))
        self._stepping = True
        self._step_done.clear()
        step = self._stepper.submit(self.engine.step, batch)
        try:
            return await asyncio.wrap_future(step)
        finally:
            wait([step])  # cancelled (the loop is closing): the engine stays the worker's until it ends
            self._stepping = False
            for change in self._after_step:
                change()
            self._after_step.clear()
            self._step_done.set()

    async def _drive(self) -> None:
        try:
            while self.engine.has_work():
                finished = await self._step()
                for seq, on_text in list(self._watched.values()):
                    on_text(seq.stream.text)
                for seq in finished:
                    waiter = self._pending.pop(seq.id, None)
                    if waiter is not None and not waiter.done():
                        if seq.error is not None:
                            waiter.set_exception(seq.error)
                        else:
                            waiter.set_result(seq.result())
                # A finished call wakes its thread, whose next call (a parent's continuation after
                # a join, say) may take a few loop turns to arrive: give it those turns so it joins
                # the next step instead of the one after.
                for _ in range(4 if finished else 1):
                    await asyncio.sleep(0)
        except Exception as exc:  # never leave a caller waiting on a dead driver
            self.engine.cancel_all()
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(exc)
            self._pending.clear()
