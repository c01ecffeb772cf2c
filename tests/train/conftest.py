import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from apr.train.sft import SFTConfig


def write_rows(path: Path, n_problems: int = 40, seed: int = 0) -> Path:
    """SFT rows shaped like trace segments: a state prompt and a few operation lines, 20-150 tokens."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for pid in range(n_problems):
            nums = [rng.randint(1, 40) for _ in range(4)]
            lines = [f"\nExploring Operation: {a}+{b}={a + b}, Resulting Numbers: [{a + b}]"
                     for a, b in zip(nums, nums[1:])] * rng.randint(1, 4)
            for thread in range(2):
                row = {"problem_id": pid, "thread_id": f"{pid}.{thread}", "segment": 0,
                       "prompt": f"Current State: {rng.randint(10, 100)}:{nums}, Operations: []",
                       "completion": "".join(lines[thread:])}
                f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def sft_file(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("data") / "train.jsonl")


@pytest.fixture
def tiny_config(sft_file, tmp_path):
    """A seconds-long run of the ``tiny`` preset; override fields per test."""
    base = SFTConfig(data=[str(sft_file)], out=str(tmp_path / "run"), preset="tiny", max_steps=6,
                     tokens_per_batch=1024, lr=3e-3, warmup_steps=2, precision="fp32", eval_every=3,
                     save_every=2, log_every=1, val_fraction=0.1, progress=False)
    return lambda **kw: replace(base, **kw)
