"""Request bodies of ``apr serve``, validated at the edge so handlers only see sensible values.

Field names and defaults follow OpenAI's completions API, plus the vLLM/SGLang extras an APR
client needs (keep the stop string, ``top_k``). Fields the server cannot honour (streaming, n > 1,
alternatives in ``logprobs``) are refused with a clear message rather than silently ignored;
fields it does not know are ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from apr.runtime.backend import SamplingParams
from apr.runtime.limits import Limits


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str
    max_tokens: int | None = Field(None, ge=1, description="None: up to the context window")
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, description="0 or -1: off")
    seed: int | None = None
    stop: str | list[str] | None = None
    logprobs: int | None = Field(None, ge=0, le=1, description="only the sampled token's log-prob is available")
    n: int = 1
    stream: bool = False
    include_stop_str_in_output: bool = False  # vLLM
    no_stop_trim: bool = False  # SGLang

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported; send concurrent requests instead (they are batched)")
        return v

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, v: bool) -> bool:
        if v:
            raise ValueError("streaming is not supported; send stream=false")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if any(not s for s in stops):
            raise ValueError("stop strings must be non-empty")
        return stops

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_k=max(self.top_k, 0), top_p=self.top_p,
                              max_tokens=max_tokens, seed=self.seed, stop=tuple(self.stop or ()),
                              logprobs=self.logprobs is not None)

    @property
    def keep_stop(self) -> bool:
        return self.include_stop_str_in_output or self.no_stop_trim


class SolveRequest(BaseModel):
    """One Countdown problem for ``POST /v1/apr/solve``; the numbers are checked by ``check_problem``."""

    model_config = ConfigDict(extra="forbid")

    nums: list[StrictInt]
    target: StrictInt
    sub_call_budget: int | None = Field(None, ge=0, description="the 'Sub Call Budget: N ' prompt prefix")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = None
    limits: Limits = Field(default_factory=Limits)
