"""Where episodes are decoded: our embedded engine, or an OpenAI-compatible server on a GPU cluster.

Both run the same fork-join orchestrator (``apr.runtime``), so training episodes are exactly the
trees inference produces. Before each rollout batch the trainer pushes its weights:

* ``EmbeddedRollouts`` keeps an inference copy of the policy (bf16 by default) inside this process
  and copies the fp32 master weights into it; nothing leaves memory.
* ``ServerRollouts`` writes the policy as an HF checkpoint to ``<out>/server-policy`` and asks an
  SGLang server to reload it (``POST /update_weights_from_disk``), so the trainer and the server
  must share a filesystem. The server then answers ``/v1/completions`` with the new weights.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Awaitable, Callable, Protocol, TypeVar

import httpx
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from apr.rl.continuations import sample_continuations
from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.model_runner import transpose_weight_storage
from apr.runtime.limits import Limits
from apr.runtime.openai_backend import OpenAIBackend
from apr.runtime.orchestrator import SolveConfig, asolve_many
from apr.threads import Thread
from apr.train.checkpoint import save_checkpoint
from apr.precision import Precision, hardware_precision, torch_dtype

T = TypeVar("T")


class Rollouts(Protocol):
    def sync(self, policy: PreTrainedModel) -> None:
        """Make the decoder use ``policy``'s current weights."""

    def solve(self, prompts: list[str], config: SolveConfig) -> list[Thread]:
        """One thread tree per prompt (problems run concurrently)."""

    def continue_from(self, prompts: list[str], k: int, params: SamplingParams) -> list[list[Generation]]:
        """``k`` sampled continuations of each prompt (``apr.rl.continuations``)."""


class EmbeddedRollouts:
    """The in-process engine over an inference copy of the policy."""

    def __init__(self, policy: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, dtype: Precision | None,
                 max_slots: int):
        self.model = copy.deepcopy(policy).eval()
        weights = torch_dtype(hardware_precision(dtype, self.model.device.type))
        self.backend = EmbeddedBackend(self.model, tokenizer, max_slots=max_slots, dtype=weights)
        transpose_weight_storage(self.model)  # the copy is the engine's own; sync copies values into it

    @torch.no_grad()
    def sync(self, policy: PreTrainedModel) -> None:
        self.model.load_state_dict(policy.state_dict())  # copies and casts into the engine's tensors

    def solve(self, prompts: list[str], config: SolveConfig) -> list[Thread]:
        return asyncio.run(asolve_many(prompts, self.backend, config))

    def continue_from(self, prompts: list[str], k: int, params: SamplingParams) -> list[list[Generation]]:
        return asyncio.run(sample_continuations(self.backend, prompts, k, params))


class ServerRollouts:
    """An SGLang server (OpenAI-compatible completions) that reloads the policy from disk."""

    def __init__(self, base_url: str, model: str, tokenizer: PreTrainedTokenizerFast, context_length: int,
                 weights_dir: Path, transport: httpx.BaseTransport | None = None):
        self.base_url, self.model, self.tokenizer = base_url.rstrip("/"), model, tokenizer
        self.codec = TokenCodec(tokenizer)
        self.context_length, self.weights_dir = context_length, weights_dir
        root = self.base_url.removesuffix("/v1")
        self.http = httpx.Client(base_url=root, timeout=600.0, transport=transport)

    def sync(self, policy: PreTrainedModel) -> None:
        save_checkpoint(self.weights_dir, policy, self.tokenizer, {"purpose": "weights for the rollout server"})
        reply = self.http.post("/update_weights_from_disk", json={"model_path": str(self.weights_dir.resolve())})
        ok = reply.status_code == 200 and reply.json().get("success", False)
        if not ok:
            raise RuntimeError(f"the server did not reload the policy ({reply.status_code}): {reply.text[:300]}")

    def solve(self, prompts: list[str], config: SolveConfig) -> list[Thread]:
        return self._run(lambda backend: asolve_many(prompts, backend, config))

    def continue_from(self, prompts: list[str], k: int, params: SamplingParams) -> list[list[Generation]]:
        return self._run(lambda backend: sample_continuations(backend, prompts, k, params))

    def _run(self, job: Callable[[OpenAIBackend], Awaitable[T]]) -> T:
        async def run() -> T:
            # A client per event loop: asyncio.run closes the loop an earlier client was bound to.
            # Counts exclude BOS, as every backend's do; the server adds it, so one position less.
            backend = OpenAIBackend(self.base_url, self.model, lambda text: self.codec.encode(text, bos=False),
                                    self.context_length - 1)
            try:
                return await job(backend)
            finally:
                await backend.aclose()

        return asyncio.run(run())


def solve_config(limits: Limits, max_tokens: int, seed: int | None, temperature: float = 1.0) -> SolveConfig:
    """Sampling with log-probs of the tempered distribution (``seed`` given) for training, greedy for
    validation."""
    if seed is None:
        sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    else:
        sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed, logprobs=True,
                                  tempered_logprobs=temperature != 1.0)
    return SolveConfig(sampling=sampling, limits=limits)
