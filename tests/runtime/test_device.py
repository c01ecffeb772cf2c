"""``--device``: the engine runs where its weights are, a missing GPU is one clear line."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from apr.cli import _register, app
from apr.runtime.device import resolve_device
from apr.runtime.embedded import EmbeddedBackend
from apr.serve.loading import DEFAULT_MODEL

_register()
NO_GPU = not torch.cuda.is_available()


def test_auto_takes_the_gpu_when_there_is_one():
    assert resolve_device("auto").type == ("cpu" if NO_GPU else "cuda")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name, message", [("tpu", "is not a device"), ("meta", "runs on cpu or cuda")])
def test_other_devices_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
        resolve_device("cuda")
    rows = tmp_path / "sft.jsonl"
    rows.write_text('{"prompt": "a", "completion": "b"}\n')
    for command in (["solve", "42", "16", "7", "22"],
                    ["eval", "-p", "data/c3/test.jsonl", "--apr", str(DEFAULT_MODEL), "--limit", "1", "-o", str(tmp_path)],
                    ["train", "sft", "-d", str(rows), "-o", str(tmp_path / "sft"), "--preset", "tiny", "--no-progress",
                     "--max-steps", "1"],
                    ["train", "grpo", "--init-from", str(DEFAULT_MODEL), "-p", "data/c3/test.jsonl",
                     "-o", str(tmp_path / "grpo"), "--no-progress"]):
        result = CliRunner().invoke(app, [*command, "--device", "cuda"])
        assert result.exit_code == 2 and "torch sees no CUDA GPU" in result.output and "Traceback" not in result.output


def test_the_engine_follows_the_device_it_was_given():
    backend = EmbeddedBackend.from_checkpoint(DEFAULT_MODEL, device="cpu")
    assert backend.engine.device == torch.device("cpu")
    assert backend.engine.cache.k.device == torch.device("cpu")
    down = backend.engine.model.model.layers[0].mlp.down_proj.weight
    assert down.t().is_contiguous()  # fp32 on CPU: the transposed storage the engine's products prefer
