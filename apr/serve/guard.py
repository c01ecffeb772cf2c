"""What gets through to ``apr serve``'s handlers: who may call, from which host, with how large a body.

The checks run as ASGI middleware, before any body is read or parsed: a body over the limit is
refused from its ``Content-Length`` alone (or as soon as a chunked body passes it), so a huge
upload costs the server neither time on its event loop nor memory. The API key follows vLLM's
``--api-key``: ``Authorization: Bearer KEY`` on every ``/v1`` route, ``/health`` stays open.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apr.runtime.limits import Limits
from apr.serve.errors import error_response

# A body over the limit but under this is read and dropped before the 413 (nothing is kept, so it
# costs no memory): a server that closes on unread data makes the client see a reset, not the answer.
DRAIN_BYTES = 64 << 20


@dataclass(frozen=True)
class ServePolicy:
    """What one request may ask of the server, and who may ask."""

    max_body_bytes: int = 1 << 20
    # The most a /v1/apr/solve request may ask for; at least Limits' defaults, so a bare request passes.
    solve_caps: Limits = field(default_factory=lambda: Limits(
        max_children=64, max_depth=8, max_threads=256, max_spawns=32, max_total_tokens=262_144, timeout_s=600.0))
    solve_timeout_s: float = 120.0  # for a solve that sets no timeout
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # Host headers served (DNS-rebinding defence); empty: any

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if not 0 < self.solve_timeout_s <= (self.solve_caps.timeout_s or float("inf")):
            raise ValueError(f"the default solve timeout must be in (0, {self.solve_caps.timeout_s}] s, "
                             f"got {self.solve_timeout_s}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("the API key must not be empty")


def guard(app: ASGIApp, policy: ServePolicy) -> ASGIApp:
    """``app`` behind the policy's host, key and body-size checks (the host check runs first)."""
    app = _BodyLimit(_ApiKey(app, policy.api_key), policy.max_body_bytes)
    if policy.allowed_hosts:
        app = TrustedHostMiddleware(app, allowed_hosts=list(policy.allowed_hosts))
    return app


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class _ApiKey:
    def __init__(self, app: ASGIApp, key: str | None):
        self.app, self.expected = app, f"Bearer {key}".encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.expected is not None and scope["type"] == "http" and scope["path"].startswith("/v1")
                and scope["method"] != "OPTIONS"
                and not hmac.compare_digest((_header(scope, b"authorization") or "").encode(), self.expected)):
            response = error_response(401, "missing or incorrect API key: send 'Authorization: Bearer KEY' "
                                      "with the key the server was started with", "invalid_api_key")
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


class _BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self, size: str) -> str:
        return (f"request body of {size} bytes is over this server's limit of {self.max_bytes} "
                "(apr serve --max-body-bytes)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= DRAIN_BYTES:  # read (and drop) it, or the client never sees the 413
                while (await receive()).get("more_body"):
                    pass
            response = error_response(413, self._too_large(declared), "request_too_large")
            response.headers["connection"] = "close"
            return await response(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # a chunked body: raised while the handler reads it
                    raise HTTPException(413, self._too_large(f"more than {self.max_bytes}"))
            return message

        await self.app(scope, counted, send)
