"""The ``apr serve`` application: OpenAI-compatible completions and whole-tree APR solves on one engine.

Every route runs on the event loop that drives the shared ``EmbeddedBackend``, so all requests in
flight, completions and solve threads alike, decode in the same engine batch; a step with a long
prefill runs on a worker thread, so ``/health`` and new requests are answered meanwhile. A request
whose client disconnects is cancelled, which frees its engine sequences at once instead of decoding
for nobody.
One request's failure stays its own: bad values are refused before they reach the engine, and
an engine failure is charged to the sequence that caused it (``Engine.step``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, AsyncIterator, Awaitable, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp

from apr.models.trained_range import TrainedRange
from apr.runtime.backend import SamplingParams
from apr.runtime.embedded import EmbeddedBackend
from apr.countdown.task import check_problem, solve_problem, verify_countdown
from apr.runtime.orchestrator import SolveConfig
from apr.serve import errors
from apr.serve.completions import Completer
from apr.serve.errors import APIError
from apr.serve.guard import ServePolicy, guard
from apr.serve.schemas import ChatCompletionRequest, CompletionRequest, SolveRequest

T = TypeVar("T")
OFF_LOOP_TOKENS = 64  # a step feeding this many tokens runs off the event loop (docs/serving.md)
CLIENT_CLOSED = 499  # nginx's status for a request whose client went away; nobody receives it


class ClientGone(Exception):
    """The client disconnected before its response was ready."""


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body is already read, so the next message says so)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientGone."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise ClientGone
        return task.result()
    finally:
        gone.cancel()
        task.cancel()


def create_app(backend: EmbeddedBackend, model_name: str = "apr", cache_capacity: int | None = None,
               policy: ServePolicy | None = None, trained: TrainedRange | None = None) -> ASGIApp:
    """The server over ``backend``; ``cache_capacity`` finished requests stay reusable (default: its slots).

    ``trained``: the problems the model was trained on; a solve outside them is refused.
    """
    policy = policy or ServePolicy()
    backend.off_loop_tokens = OFF_LOOP_TOKENS
    app = FastAPI(title="apr serve")
    errors.install(app)
    completer = Completer(backend, model_name, cache_capacity or backend.engine.max_slots)
    created = int(time.time())
    requests = {"running": 0, "finished": 0, "cancelled": 0, "failed": 0}

    async def tracked(request: Request, work: Awaitable[T]) -> T:
        """Run a request's work until its client leaves, counting how requests end."""
        requests["running"] += 1
        outcome = "failed"
        try:
            result = await until_disconnect(request, work)
            outcome = "finished"
            return result
        except ClientGone:
            outcome = "cancelled"
            raise
        finally:
            requests["running"] -= 1
            requests[outcome] += 1

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, __: ClientGone) -> Response:
        return Response(status_code=CLIENT_CLOSED)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "requests": dict(requests),
                "engine_busy": backend.engine.has_work(), "cached_sessions": len(completer.cache)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "apr",
                "max_model_len": backend.context_length}
        return {"object": "list", "data": [card]}

    async def complete(body: CompletionRequest, request: Request) -> Any:
        ids = await completer.admit(body)
        if body.stream:
            return StreamingResponse(counted(completer.stream(body, ids)), media_type="text/event-stream")
        gen = await tracked(request, completer.generate(body, ids))
        return completer.response(body, gen)

    async def counted(events: AsyncIterator[str]) -> AsyncIterator[str]:
        """A streamed request's events, counted in /health like the others."""
        requests["running"] += 1
        outcome = "cancelled"  # unless the stream runs to its end
        try:
            async for chunk in events:
                yield chunk
            outcome = "finished"
        finally:
            await events.aclose()
            requests["running"] -= 1
            requests[outcome] += 1

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        return await complete(body, request)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        body.prompt = completer.chat_prompt(body)
        return await complete(body, request)

    @app.post("/v1/apr/solve")
    async def solve(body: SolveRequest, request: Request) -> dict[str, Any]:
        try:
            problem = check_problem(body.nums, body.target)
            if trained is not None:
                trained.check(problem.nums, problem.target, "this server's model", "send a problem in that range")
        except ValueError as e:
            raise APIError(400, str(e), "invalid_problem") from None
        limits = body.limits
        if limits.timeout_s is None:
            limits = dataclasses.replace(limits, timeout_s=policy.solve_timeout_s)
        if over := limits.over(policy.solve_caps):
            raise APIError(400, f"limits over this server's caps: {', '.join(over)}", "limit_too_large", "limits")
        config = SolveConfig(sampling=SamplingParams(temperature=body.temperature, seed=body.seed),
                             limits=limits, verify=verify_countdown)
        result = await tracked(request, solve_problem(problem, backend, config, body.sub_call_budget))
        failed = [event for t in result.tree.walk() if t.finish_reason == "error" for event in t.events[-1:]]
        if failed:  # the engine failed this solve's calls: a server error, not a wrong answer
            raise APIError(500, f"the solve failed inside the server: {failed[0]}", "internal_error",
                           type="server_error")
        return {"model": model_name, **result.to_dict()}

    return guard(app, policy)
