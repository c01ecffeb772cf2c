"""Problems and models for an evaluation, checked before any decoding starts.

Mismatches do not crash later, they silently score zero: problems with a different number count
than the model was trained on, a tokenizer that is not the model's, a server that tokenizes
differently. Each is refused here with a message that says what differs and what to pass instead.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from apr.countdown import task
from apr.countdown.task import Problem
from apr.data.io import DataFileError
from apr.models.trained_range import trained_range
from apr.runtime.backend import Backend, SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.llamacpp_backend import LlamaCppBackend
from apr.runtime.remote import open_remote, reports_window
from apr.tokenizer import checkpoint_tokenizer, load_tokenizer


# -- problems ----------------------------------------------------------------------------------
def load_problems(path: Path, limit: int | None = None) -> list[Problem]:
    """The task's problems file, all with one number count (a report compares like with like)."""
    problems = task.load_problems(path, limit)
    counts = Counter(len(p.nums) for p in problems)
    if len(counts) > 1:
        raise DataFileError(f"{path} mixes problems with {', '.join(map(str, sorted(counts)))} numbers; "
                            "evaluate one number count at a time")
    return problems


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# -- models ------------------------------------------------------------------------------------
@dataclass
class Model:
    """A model ready to decode: its backend, token counter, window, and what identifies it."""

    fmt: str
    backend: Backend
    codec: TokenCodec
    context_length: int
    name: str  # the checkpoint folder or served model name, for the report
    identity: dict[str, Any]  # what a resumed run must match: the weights' digest, or server and model name
    served: bool = False  # an OpenAI-compatible server: token counts come from our tokenizer

    def count(self, text: str) -> int:
        return self.codec.count(text)


def check_range(fmt: str, ref: str, problems: list[Problem]) -> str | None:
    """Refuse problems with a number count the model never trained on; a note for other out-of-range ones.

    Numbers or targets past the trained range stay allowed (a generalisation study may want them),
    and the report says how many there were.
    """
    trained = trained_range(Path(ref)) if Path(ref).is_dir() else None
    if trained is None:
        return f"{fmt}: {ref} records no training range (apr_train.json 'task'); problems not checked against it"
    outside = [(p, why) for p in problems if (why := trained.refusal(p.nums, p.target))]
    counts = [(p, why) for p, why in outside if len(p.nums) not in trained.counts]
    if counts:
        p, why = counts[0]
        raise ValueError(f"the {fmt} model {ref} was trained on {trained}, but {len(counts)} of {len(problems)} "
                         f"problems have another number count (first: {p.target} from {list(p.nums)}); "
                         "evaluate it on a matching problems file")
    if outside:
        return f"{fmt}: {len(outside)} of {len(problems)} problems lie outside {ref}'s training range ({trained})"
    return None


def _weights_digest(ref: Path) -> str:
    weights = sorted(ref.glob("*.safetensors")) or sorted(ref.glob("*.bin")) or [ref / "config.json"]
    h = hashlib.sha256()
    for w in weights:
        h.update(bytes.fromhex(file_digest(w)))
    return h.hexdigest()[:16]


def open_embedded(fmt: str, ref: str, *, tokenizer: str | None, max_batch: int, dtype: str = "float32",
                  device: str = "auto") -> Model:
    """A local checkpoint on the in-process engine (the tokenizer is checked before the weights load)."""
    path = Path(ref)
    if not path.is_dir():
        raise FileNotFoundError(f"{fmt} checkpoint {path} does not exist; train one with `apr train sft` "
                                f"or point --{fmt} at a checkpoint folder")
    backend = EmbeddedBackend.from_checkpoint(path, max_slots=max_batch, tokenizer=tokenizer,
                                              dtype=getattr(torch, dtype), device=device)
    return Model(fmt, backend, backend.codec, backend.context_length, str(path), {"weights": _weights_digest(path)})


def open_served(fmt: str, ref: str, *, url: str, tokenizer: str | None, context_length: int | None) -> Model:
    """A model behind a server (llama-server, or any OpenAI-compatible one, where ``ref`` is its served
    name); a local folder of that name also supplies the tokenizer, and the window if the server
    reports none."""
    path = Path(ref)
    codec = TokenCodec(checkpoint_tokenizer(path, tokenizer) if path.is_dir() else load_tokenizer(tokenizer))
    if context_length is None and (path / "config.json").is_file() and not reports_window(url, ref):
        context_length = AutoConfig.from_pretrained(path).max_position_embeddings
    backend, _ = open_remote(url, codec, model=ref, context_length=context_length)
    return Model(fmt, backend, codec, backend.context_length, ref, {"server": url, "model": ref}, served=True)


async def check_served_tokenizer(model: Model, problem: Problem) -> None:
    """The server must tokenize as we do: llama-server is asked for its ids of the prompt (it decodes
    ours, but a client of the OpenAI API sends text); any other server answers one 1-token request
    whose prompt count must be ours (plus BOS)."""
    prompt = problem.prompt(model.fmt)
    if isinstance(model.backend, LlamaCppBackend):
        theirs, ours = await model.backend.server_ids(prompt), model.codec.encode(prompt)
        if theirs != ours:
            raise ValueError(f"tokenizer mismatch: llama-server tokenizes the {model.fmt} prompt as {theirs[:12]}..., "
                             f"ours as {ours[:12]}...; serve a GGUF written by `apr export gguf`")
        return
    gen = await model.backend.generate("apr-eval/probe", prompt, SamplingParams(max_tokens=1))
    if gen.finish_reason == "error":
        raise ValueError(f"the server did not answer for the {model.fmt} model: {gen.extra.get('error')}")
    ours = model.count(prompt)
    if gen.prompt_tokens not in (ours, ours + 1):
        raise ValueError(f"tokenizer mismatch: the server counts {gen.prompt_tokens} tokens in a prompt our "
                         f"tokenizer encodes as {ours} (+1 BOS); pass the served model's tokenizer with --tokenizer")
