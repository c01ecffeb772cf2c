"""Servers for the serving tests: ``apr serve``'s app over loopback, on tiny saved checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import OpenAI

from apr.runtime.embedded import EmbeddedBackend
from apr.models.trained_range import trained_range
from apr.serve.app import create_app
from apr.serve.loading import load_backend
from tests.loopback import Loopback
from tests.serve.models import NAME, save_memorised, save_random


@dataclass
class Served:
    path: Path  # the checkpoint folder the server loaded
    backend: EmbeddedBackend  # the server's engine, for checks on its state
    server: Loopback

    def client(self, **kwargs) -> OpenAI:
        return OpenAI(base_url=self.server.url, api_key="x", max_retries=0, **kwargs)


def _serve(path: Path):
    backend = load_backend(path, max_slots=8)
    with Loopback(create_app(backend, NAME, trained=trained_range(path))) as server:
        yield Served(path, backend, server)


@pytest.fixture(scope="session")
def random_dir(tmp_path_factory) -> Path:
    return save_random(tmp_path_factory.mktemp("random"))


@pytest.fixture(scope="session")
def served(random_dir):
    """A random-weight tiny Llama behind ``apr serve``."""
    yield from _serve(random_dir)


@pytest.fixture(scope="session")
def served_apr(tmp_path_factory):
    """A tiny Llama that writes one APR demonstration (``tests.serve.models.PROBLEM``), behind ``apr serve``."""
    yield from _serve(save_memorised(tmp_path_factory.mktemp("memorised")))
