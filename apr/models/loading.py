"""Build fresh models from presets and load Hugging Face checkpoints, checking the tokenizer fits."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from transformers.utils import logging as hf_logging
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, LlamaForCausalLM, PretrainedConfig, PreTrainedTokenizerBase

from apr.models.presets import ModelConfigError, model_config


def build_model(preset: str, tokenizer: PreTrainedTokenizerBase, context_length: int | None = None,
                seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised model (the paper trains from scratch); ``seed`` fixes the init."""
    config = model_config(preset, tokenizer, context_length)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    # Saved as generation_config.json, so generate() and serving engines know the stop and pad ids.
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id,
                                               max_length=config.max_position_embeddings)
    return model


def check_tokenizer(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, where: str = "the model",
                    checkpoint: Path | None = None) -> None:
    """Refuse a tokenizer whose vocabulary or special ids differ from the model's.

    A mismatch does not crash: it silently trains or decodes garbage, so it is checked up front.
    A ``checkpoint`` that carries its own tokenizer is also compared token by token, which
    catches a same-size vocabulary with other ids.
    """
    problems = []
    if checkpoint is not None and (checkpoint / "tokenizer.json").is_file():
        from apr.tokenizer import load_tokenizer

        ours, saved = tokenizer.get_vocab(), load_tokenizer(checkpoint).get_vocab()
        moved = sorted((piece for piece in ours.keys() | saved.keys() if ours.get(piece) != saved.get(piece)),
                       key=lambda piece: saved.get(piece, len(saved)))
        if moved:
            first = moved[0]
            problems.append(f"{len(moved)} token(s) have other ids than in {checkpoint / 'tokenizer.json'} "
                            f"(first: {first!r} is {ours.get(first)} here, {saved.get(first)} there); "
                            "use the checkpoint's own tokenizer")
    if config.vocab_size != len(tokenizer):
        problems.append(f"vocabulary size {config.vocab_size} (model) vs {len(tokenizer)} (tokenizer)")
    for name in ("bos", "eos", "pad"):
        want, have = getattr(config, f"{name}_token_id", None), getattr(tokenizer, f"{name}_token_id")
        if want is not None and want != have:
            problems.append(f"{name} id {want} (model) vs {have} (tokenizer)")
    if problems:
        raise ModelConfigError(f"tokenizer does not match {where}: " + "; ".join(problems))


def load_model(path: str | Path, tokenizer: PreTrainedTokenizerBase | None = None,
               dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    """Load a checkpoint directory; with ``tokenizer``, first check that it matches the checkpoint."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelConfigError(f"{path} is not a model checkpoint (no config.json)")
    with _unreadable(path):
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    if tokenizer is not None:  # before reading the weights, which can take a while
        check_tokenizer(config, tokenizer, where=f"checkpoint {path}", checkpoint=path)
    hf_logging.disable_progress_bar()  # a "Loading weights" bar for a few-MB file is noise in every command
    with _unreadable(path):
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)


@contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """A missing, truncated or corrupt checkpoint file as one ModelConfigError naming the folder."""
    try:
        yield
    except (OSError, SafetensorError, json.JSONDecodeError) as e:
        reason = " ".join(str(e).split())
        raise ModelConfigError(f"{path}: cannot load the checkpoint ({reason}); "
                               "save it again or point at another checkpoint") from None
