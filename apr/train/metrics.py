"""What a training run records as it goes: ``metrics.jsonl``, optionally mirrored to TensorBoard,
and the run's whole configuration in ``run_config.json`` (SFT and GRPO alike)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from apr.data.io import atomic_write_bytes

RUN_CONFIG = "run_config.json"  # not config.json: a run folder must not look like a checkpoint


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError):  # a line cut short by a kill
        return math.inf


class MetricsLog:
    """Append-only JSONL log; on resume, records past the checkpoint's step (and a torn last line) are dropped.

    With ``tensorboard``, every numeric field of a record with a ``step`` is also a TensorBoard
    scalar under ``<run>/tensorboard`` (records past the resume step are purged there too).
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int, tensorboard: bool = False) -> None:
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        self.board = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.board = SummaryWriter(str(path.parent / "tensorboard"), purge_step=resume_step + 1)

    def write(self, **record: Any) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.board.add_scalar(key, value, record["step"])
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def save_run_config(out: Path, config: dict[str, Any]) -> None:
    """The run's whole configuration, next to its checkpoints, as one JSON file."""
    atomic_write_bytes(Path(out) / RUN_CONFIG, (json.dumps(config, indent=2, default=str) + "\n").encode())
