"""A real OpenAI-compatible chat server on loopback that answers from a script, not a model.

Each request's last user message is matched against the script's rules in order; the first rule
that matches (and has uses left) decides the reply, a delay, an HTTP error, a refusal. Token
counts are whitespace-separated words. The server logs every request with its timing and tracks
how many were in flight at once, so tests can check ordering, isolation and real overlap.

Run it standalone for a demo, from the repository root: ``python -m tests.prompted.scripted_server``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.loopback import Loopback

MAX_DELAY = 10.0  # seconds; a "hanging" rule still ends, so no test can wait forever
MODEL = "scripted"


@dataclass
class Rule:
    pattern: str  # regex searched in the last user message
    reply: str | Callable[[str], str] = "ok"
    delay: float = 0.0  # seconds before answering, capped at MAX_DELAY
    status: int = 200  # anything else: answer with this HTTP error
    uses: int | None = None  # None: unlimited; otherwise the rule is skipped once used up
    refusal: str | None = None  # answer with an API-level refusal
    usage: bool = True  # False: leave the usage field out, as some servers do
    refuse_formats: tuple[str, ...] = ()  # response_format types answered with HTTP 400
    used: int = 0


@dataclass
class Hit:
    prompt: str  # the last user message
    messages: list[dict]
    rule: int  # index of the rule that answered; -1: none matched
    start: float
    end: float = 0.0
    model: str = ""
    max_tokens: int | None = None
    response_format: str | None = None  # the request's response_format type
    prompt_tokens: int = 0  # as reported in the response's usage
    completion_tokens: int = 0


@dataclass
class ScriptedServer:
    rules: list[Rule] = field(default_factory=list)
    log: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0  # most requests in flight at once since the last ``script``
    served: tuple[str, ...] = (MODEL,)  # what /v1/models lists
    window: int | None = None  # the max_model_len /v1/models reports (None: none, as some servers)

    def script(self, *rules: Rule, served: tuple[str, ...] = (MODEL,), window: int | None = None) -> None:
        """Replace the rules and forget the log."""
        self.rules, self.log, self.in_flight, self.peak, self.served = list(rules), [], 0, 0, served
        self.window = window

    def hits(self, pattern: str) -> list[Hit]:
        return [h for h in self.log if re.search(pattern, h.prompt)]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict:
            extra = {} if self.window is None else {"max_model_len": self.window}
            return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tests", **extra}
                                               for m in self.served]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            messages = body.get("messages") or []
            users = [m["content"] for m in messages if m.get("role") == "user"]
            if not users:
                return _error(400, "no user message")
            hit = Hit(users[-1], messages, -1, time.monotonic(), model=body.get("model", ""),
                      max_tokens=body.get("max_tokens"), response_format=(body.get("response_format") or {}).get("type"))
            self.log.append(hit)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                return await self._answer(request, hit, body)
            finally:
                self.in_flight -= 1
                hit.end = time.monotonic()

        return app

    async def _answer(self, request: Request, hit: Hit, body: dict) -> JSONResponse:
        for i, rule in enumerate(self.rules):
            if (rule.uses is None or rule.used < rule.uses) and re.search(rule.pattern, hit.prompt):
                rule.used += 1
                hit.rule = i
                break
        else:
            return _error(500, f"no rule matches: {hit.prompt[:200]!r}")
        until = time.monotonic() + min(rule.delay, MAX_DELAY)
        while time.monotonic() < until:  # stop early if the client gave up
            if await request.is_disconnected():
                return _error(499, "client disconnected")
            await asyncio.sleep(min(0.02, max(0.0, until - time.monotonic())))
        if rule.status != 200:
            return _error(rule.status, f"scripted HTTP {rule.status}")
        if hit.response_format in rule.refuse_formats:
            return _error(400, f"response_format {hit.response_format} is not supported")
        text = rule.reply(hit.prompt) if callable(rule.reply) else rule.reply
        words, finish = text.split(" "), "stop"
        if hit.max_tokens is not None and len(words) > hit.max_tokens:
            words, finish = words[: hit.max_tokens], "length"
        content = " ".join(words)
        hit.prompt_tokens = sum(len(m["content"].split()) for m in hit.messages)
        hit.completion_tokens = len(content.split())
        message = {"role": "assistant", "content": None if rule.refusal else content, "refusal": rule.refusal}
        usage = {"prompt_tokens": hit.prompt_tokens, "completion_tokens": hit.completion_tokens,
                 "total_tokens": hit.prompt_tokens + hit.completion_tokens}
        return JSONResponse({
            "id": f"chatcmpl-{len(self.log)}", "object": "chat.completion", "created": int(time.time()),
            "model": hit.model or MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            **({"usage": usage} if rule.usage else {}),
        })


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "scripted", "code": status}}, status_code=status)


# -- the demo script used in docs/prompted.md ----------------------------------------------------
DEMO_TASK = "Which is largest: the number of seconds in a week, the number of minutes in a 365-day year, or 2^20?"
DEMO_PLAN = """[
  {"id": "week", "task": "Compute the number of seconds in a week.", "depends_on": []},
  {"id": "year", "task": "Compute the number of minutes in a 365-day year.", "depends_on": []},
  {"id": "pow", "task": "Compute 2^20.", "depends_on": []}
]"""
WEEK = "7 days x 24 h = 168 h; 168 x 60 = 10,080 min; 10,080 x 60 = 604,800 s. Result: 604,800."
YEAR = "365 days x 24 h = 8,760 h; 8,760 x 60 = 525,600 min. Result: 525,600."
POW = "2^10 = 1,024, so 2^20 = 1,024 x 1,024 = 1,048,576. Result: 1,048,576."


def demo_rules() -> list[Rule]:
    """Three independent computations. The sleeps stand in for decoding time: 1 s per computation,
    0.6 s for the plan and for the merge, and 3 s for the sequential chain that does all three."""
    return [
        Rule(r"Reply with only a JSON list", DEMO_PLAN, delay=0.6),
        Rule(r"Your subtask \(week\)", WEEK, delay=1.0),
        Rule(r"Your subtask \(year\)", YEAR, delay=1.0),
        Rule(r"Your subtask \(pow\)", POW, delay=1.0),
        Rule(r"Results of the subtasks", "604,800 < 1,048,576 and 525,600 < 1,048,576, so 2^20 is the largest."
             "\nAnswer: 2^20", delay=0.6),
        Rule(r"Think step by step", f"Seconds in a week: {WEEK} Minutes in a year: {YEAR} Then 2^20: {POW} "
             "The largest is 2^20.\nAnswer: 2^20", delay=3.0),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args()
    with Loopback(ScriptedServer(demo_rules()).app(), args.port) as server:
        print(f"scripted chat server at {server.url} (model {MODEL!r}); Ctrl-C stops it", flush=True)
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass
