"""One scripted chat server on loopback for the whole directory; each test writes its own script."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable, Iterator

import pytest

from apr.prompted.client import ChatClient, ClientConfig
from apr.prompted.orchestrator import AskConfig, Result, ask
from tests.loopback import Loopback
from tests.prompted.scripted_server import MODEL, ScriptedServer


@pytest.fixture(scope="session")
def running() -> Iterator[tuple[ScriptedServer, str]]:
    scripted = ScriptedServer()
    with Loopback(scripted.app()) as loopback:
        yield scripted, loopback.url


@pytest.fixture
def server(running: tuple[ScriptedServer, str]) -> Iterator[ScriptedServer]:
    scripted = running[0]
    scripted.script()
    yield scripted
    scripted.script()


@pytest.fixture
def url(running: tuple[ScriptedServer, str]) -> str:
    return running[1]


@pytest.fixture
def dead_url() -> str:
    """An API root on a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture
def solve(url: str) -> Callable[..., Result]:
    """``solve(task, timeout=..., retries=..., **AskConfig fields)`` against the scripted server."""

    def run(task: str, *, timeout: float = 5.0, retries: int = 0, **config: Any) -> Result:
        async def go() -> Result:
            client_config = ClientConfig(model=MODEL, base_url=url, timeout=timeout, retries=retries)
            async with ChatClient(client_config) as client:
                return await ask(task, client, AskConfig(**config))

        return asyncio.run(go())

    return run
