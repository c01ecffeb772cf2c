"""Hugging Face-format checkpoints, written atomically, plus the trainer state that resume needs.

A checkpoint directory is a complete HF model (``config.json``, ``model.safetensors``,
``generation_config.json``, tokenizer files) that ``AutoModelForCausalLM.from_pretrained`` loads
without apr. Training checkpoints add ``trainer_state.pt`` (optimizer, step, RNG); every checkpoint
has ``apr_train.json`` saying how it was made. Each is written to a hidden temporary directory and
renamed into place, so a crash mid-save never leaves a half-written checkpoint under a real name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from apr.data.io import default_file_mode
from apr.models.trained_range import META_FILE
from apr.tokenizer import save_tokenizer

STATE_FILE = "trainer_state.pt"
FINAL = "final"
_CKPT = re.compile(r"checkpoint-(\d+)")


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / f"checkpoint-{step:07d}"


def save_checkpoint(path: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast,
                    meta: dict[str, Any], state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint at ``path`` atomically (temp dir + rename), replacing any older one there."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar would break the training bar
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, tmp)  # keeps the flags transformers 4.x engines read
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        mode = default_file_mode()  # the weights come out 0600 from the saver; serving as another user needs 0644
        for f in tmp.iterdir():
            f.chmod(mode)
        if path.exists():  # rename the old one away first: at every instant one complete copy exists
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def training_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Resumable checkpoints in ``out``, oldest first."""
    found = []
    for p in out.glob("checkpoint-*"):
        m = _CKPT.fullmatch(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(out: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` training checkpoints, and leftovers of interrupted saves."""
    for _, p in training_checkpoints(out)[:-keep]:
        shutil.rmtree(p)
    for p in out.glob(".*.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads((path / META_FILE).read_text())


def resume_point(out: Path, resume: bool, settings: dict[str, Any],
                 renamed: dict[str, str] | None = None) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest training checkpoint in ``out`` and its state when resuming, else ``(None, None)``.

    ``settings`` are the ones that shape the run's trajectory; the checkpoint's state must have saved
    the same under ``"config"`` (read through ``renamed``, old name -> new, for settings renamed since),
    or resuming would silently train something else. Without ``resume``,
    a folder that already holds a run is refused rather than overwritten.
    """
    existing = training_checkpoints(out)
    if not resume:
        if existing or (out / FINAL).exists():
            raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        return None, None
    if not existing:
        return None, None
    path = existing[-1][1]
    state = load_state(path)
    saved = {(renamed or {}).get(k, k): v for k, v in state["config"].items()}
    diff = [k for k in settings if saved.get(k) != settings[k]]
    if diff:
        changes = "; ".join(f"{k}: {saved.get(k)!r} -> {settings[k]!r}" for k in diff)
        raise ValueError(f"cannot resume {path}: settings differ from the interrupted run ({changes})")
    return path, state
