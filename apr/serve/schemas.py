"""Request bodies of ``apr serve``, validated at the edge so handlers only see sensible values.

Field names and defaults follow OpenAI's completions API, plus the vLLM/SGLang extras an APR
client needs (keep the stop string, ``top_k``). Every value is bounded: a request can ask for
nothing the sampler cannot do or that would slow everyone else down. OpenAI and vLLM parameters
this server does not implement are refused unless they carry their no-op value, rather than
silently ignored; fields nobody knows are ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from apr.runtime.backend import SEEDS, SamplingParams
from apr.runtime.limits import Limits

MAX_STOPS = 16  # stop strings per request (OpenAI allows 4); each is matched against every token
MAX_STOP_CHARS = 256
MAX_TOP_K = 2**31 - 1  # anything above the vocabulary means "off"

# Parameters of OpenAI's or vLLM's completions API this server does not implement, with the values
# that mean "not used". Any other value is refused: a silently ignored penalty or bias is a wrong answer.
NOT_IMPLEMENTED: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1), "suffix": (None, ""), "presence_penalty": (None, 0), "frequency_penalty": (None, 0),
    "repetition_penalty": (None, 1), "repeat_penalty": (None, 1), "logit_bias": (None, {}), "min_tokens": (None, 0), "min_p": (None, 0),
    "ignore_eos": (None, False), "prompt_logprobs": (None,), "stream_options": (None,),
    "response_format": (None,), "guided_json": (None,), "guided_regex": (None,), "guided_choice": (None,),
    "guided_grammar": (None,), "allowed_token_ids": (None,), "bad_words": (None, []),
}


def _text(value: str, what: str) -> str:
    """``value`` if it is valid Unicode (JSON can carry lone surrogates, which no tokenizer takes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not valid Unicode: a lone surrogate at character {e.start}") from None
    return value


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str
    max_tokens: int | None = Field(None, ge=1, description="None: up to the context window")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="below 1e-5: greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, le=MAX_TOP_K, description="0 or -1: off")
    seed: int | None = Field(None, ge=0, lt=SEEDS)
    stop: str | list[str] | None = Field(None, validate_default=True)  # always a list once validated
    logprobs: int | None = Field(None, ge=0, le=1, description="only the sampled token's log-prob is available")
    echo: bool = False
    n: int = 1
    stream: bool = False
    include_stop_str_in_output: bool = False  # vLLM
    no_stop_trim: bool = False  # SGLang

    @model_validator(mode="before")
    @classmethod
    def _implemented(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, unused in NOT_IMPLEMENTED.items():
            if name in data and data[name] not in unused:
                raise ValueError(f"{name}={data[name]!r} is not supported by this server; leave it out")
        if data.get("max_completion_tokens") is not None:  # the chat API's name for max_tokens
            if data.get("max_tokens") not in (None, data["max_completion_tokens"]):
                raise ValueError("max_tokens and max_completion_tokens disagree; send one of them")
            data = {**data, "max_tokens": data["max_completion_tokens"]}
        return data

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        return _text(v, "prompt")

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported; send concurrent requests instead (they are batched)")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop strings, got {len(stops)}")
        for s in stops:
            if not s or len(s) > MAX_STOP_CHARS:
                raise ValueError(f"stop strings must have 1 to {MAX_STOP_CHARS} characters, got {len(s)}")
            _text(s, "a stop string")
        return stops

    @model_validator(mode="after")
    def _combinations(self) -> CompletionRequest:
        if self.echo and self.wants_logprobs:
            raise ValueError("echo with logprobs is not supported: the prompt's tokens are not scored")
        if self.stream and self.wants_logprobs:
            raise ValueError("logprobs are not streamed; send stream=false to get them")
        return self

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs is not None

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_k=max(self.top_k, 0), top_p=self.top_p,
                              max_tokens=max_tokens, seed=self.seed, stop=tuple(self.stop or ()),
                              logprobs=self.wants_logprobs)

    @property
    def keep_stop(self) -> bool:
        return self.include_stop_str_in_output or self.no_stop_trim


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer"]
    content: str

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        return _text(v, "a message's content")


class ChatCompletionRequest(CompletionRequest):
    """OpenAI's chat completions, mapped onto a completion: the prompt is built from ``messages``."""

    prompt: str = ""  # built from the messages by the server, never sent
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    logprobs: bool | None = None  # the chat API's spelling: true for the sampled token's log-prob
    top_logprobs: int | None = Field(None, ge=0, le=0, description="alternatives are not available")

    @field_validator("logprobs", mode="before")
    @classmethod
    def _chat_logprobs(cls, v: Any) -> Any:
        return None if v in (None, False) else v  # so "asked for" reads the same as for completions


class SolveRequest(BaseModel):
    """One Countdown problem for ``POST /v1/apr/solve``; the numbers are checked by ``check_problem``.

    ``limits`` may ask for at most the server's caps (``ServePolicy.solve_caps``); without a timeout, a
    solve gets the server's default one.
    """

    model_config = ConfigDict(extra="forbid")

    nums: list[StrictInt] = Field(max_length=64)
    target: StrictInt
    sub_call_budget: int | None = Field(None, ge=0, le=10_000, description="the 'Sub Call Budget: N ' prompt prefix")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="below 1e-5: greedy")
    seed: int | None = Field(None, ge=0, lt=SEEDS)
    limits: Limits = Field(default_factory=Limits)
