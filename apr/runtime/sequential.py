"""The plain-transformers reference backend: ``model.generate`` per call, no batching, no cache.

``SequentialBackend`` decodes one call at a time and re-prefills the whole prompt every call: the
paper's client-side orchestration without a batching server. Tests compare the embedded engine's
trees against it, and the benchmark uses it as the baseline.
"""

from __future__ import annotations

import time

import torch
from transformers import LlamaForCausalLM, LogitsProcessor, PreTrainedTokenizerBase, StoppingCriteria

from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.text import TextStream


class SequentialBackend:
    """``model.generate`` per call, alone, from the full prompt (no cache kept between calls)."""

    def __init__(self, model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, *,
                 context_length: int | None = None):
        self.model = model.eval()
        self.codec = TokenCodec(tokenizer)
        self.context_length = context_length or model.config.max_position_embeddings

    async def generate(self, session: str, prompt: str, params: SamplingParams,
                       fork_from: str | None = None) -> Generation:
        # Runs synchronously inside the coroutine, so concurrent calls execute one after another.
        ids = self.codec.encode(prompt)
        room = min(params.max_tokens, self.context_length - len(ids))
        if room <= 0:
            return Generation("", [], "context" if params.max_tokens > 0 else "length", len(ids))
        stop = _StopOnText(self.codec, params.stop, len(ids))
        clock = _FirstLogits()
        sampling = {}
        if params.temperature > 0:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            sampling = dict(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                            top_k=params.top_k or len(self.codec.token_bytes))
        start = time.perf_counter()
        dev = self.model.device
        with torch.inference_mode():
            out = self.model.generate(
                torch.tensor([ids], device=dev), attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=dev),
                max_new_tokens=room, eos_token_id=self.codec.eos_token_id, pad_token_id=self.codec.eos_token_id,
                stopping_criteria=[stop], logits_processor=[clock], return_dict_in_generate=True,
                output_logits=params.logprobs, **({"do_sample": False} | sampling))
        end = time.perf_counter()
        new = out.sequences[0, len(ids):].tolist()
        stop.stream.close()
        if stop.stream.stopped:
            reason = "stop"
        elif new and new[-1] == self.codec.eos_token_id:
            reason = "eos"
        else:
            reason = "length" if len(new) >= params.max_tokens else "context"
        logprobs = None
        if params.logprobs:
            logprobs = [torch.log_softmax(step[0].float(), -1)[t].item() for step, t in zip(out.logits, new)]
        first = clock.first or end
        return Generation(stop.stream.text, new, reason, len(ids), logprobs=logprobs,
                          prefill_seconds=first - start, decode_seconds=end - first)

    def release(self, session: str) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return self.codec.count(text)


class _StopOnText(StoppingCriteria):
    """Stops ``generate`` when the decoded text reaches a stop string (the engine's rule)."""

    def __init__(self, codec: TokenCodec, stops: tuple[str, ...], prompt_len: int):
        self.codec, self.seen = codec, prompt_len
        self.stream = TextStream(stops)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        for tok in input_ids[0, self.seen:].tolist():
            if tok != self.codec.eos_token_id:
                self.stream.push(self.codec.token_bytes[tok])
        self.seen = input_ids.shape[1]
        return torch.tensor([self.stream.stopped], device=input_ids.device)


class _FirstLogits(LogitsProcessor):
    """Notes when the first logits arrive, i.e. when the prompt's prefill is done."""

    first: float | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.first is None:
            self.first = time.perf_counter()
        return scores
