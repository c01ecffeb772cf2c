"""Fixtures every test folder shares."""

import pytest
import torch

from apr.tokenizer import load_tokenizer


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models on 2 shared cores: threads waiting on each other run many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tok():
    """The bundled tokenizer."""
    return load_tokenizer()
