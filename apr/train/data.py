"""SFT data: read JSONL/Parquet rows, tokenize them, enforce the context limit, split off validation.

Each row is one training sequence, ``BOS + prompt + completion + EOS`` (one thread segment for APR,
one whole trace for SoS+). Everything here runs before the model is built, so bad input fails fast.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Sequence

import datasets
from transformers import PreTrainedTokenizerBase

from apr.tokenizer import encode_segment
from apr.train.config import LongPolicy

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
REQUIRED = ("prompt", "completion")


class SFTInputError(ValueError):
    """Input a training run cannot use: missing or unreadable files, wrong fields, overlong rows, bad settings."""


def column(ds: datasets.Dataset, name: str) -> list:
    """A whole column as a Python list, in one Arrow call (``ds[name]`` reads row by row: minutes at 1M rows)."""
    return ds.with_format("arrow")[name].to_pylist()


def _data_files(paths: Sequence[str | Path]) -> tuple[str, list[str]]:
    """Expand directories, check existence, and pick the one loader all files share."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in FORMATS)
            if not found:
                raise SFTInputError(f"directory {p} holds no {'/'.join(FORMATS)} files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise SFTInputError(f"data file not found: {p}")
    if not files:
        raise SFTInputError("no data files given")
    kinds = {FORMATS.get(f.suffix) for f in files}
    if None in kinds:
        bad = next(f for f in files if f.suffix not in FORMATS)
        raise SFTInputError(f"{bad}: unsupported data file type; use .jsonl, .json or .parquet")
    if len(kinds) > 1:
        raise SFTInputError("mix of JSON and Parquet data files; convert them to one format")
    return kinds.pop(), [str(f) for f in files]


def load_rows(paths: Sequence[str | Path]) -> datasets.Dataset:
    """Load the rows of JSONL/Parquet files (or directories of them) with string prompt/completion."""
    kind, files = _data_files(paths)
    empty = [f for f in files if Path(f).stat().st_size == 0]
    if empty:
        raise SFTInputError(f"{empty[0]} is empty: it holds no rows")
    try:
        ds = datasets.load_dataset(kind, data_files=files, split="train")
    except Exception as e:  # datasets wraps parser errors in several exception types
        cause = e.__cause__ or e
        raise SFTInputError(f"could not read {', '.join(files)}: {type(cause).__name__}: {cause}") from None
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise SFTInputError(f"{', '.join(files)}: rows lack field(s) {', '.join(missing)} "
                           f"(found: {', '.join(ds.column_names)})")
    for c in REQUIRED:
        feature = ds.features[c]
        dtype = getattr(feature, "dtype", None)  # a list, a dict or mixed types have none
        if dtype not in ("string", "large_string"):
            found = dtype or ("mixed types" if type(feature).__name__ == "Json" else type(feature).__name__.lower())
            raise SFTInputError(f"{', '.join(files)}: field {c!r} must be a string in every row, found {found}")
    if len(ds) == 0:
        raise SFTInputError(f"{', '.join(files)}: no rows")
    return ds


def tokenize_rows(ds: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
    """Add ``input_ids``, ``n_prompt`` (BOS + prompt tokens) and ``length`` via ``apr.tokenizer``."""
    def encode(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "n_prompt": [], "length": []}
        for prompt, completion in zip(batch["prompt"], batch["completion"]):
            if prompt is None or completion is None:
                raise SFTInputError("a row has a null prompt or completion")
            ids, n_prompt = encode_segment(tokenizer, prompt, completion)
            out["input_ids"].append(ids)
            out["n_prompt"].append(n_prompt)
            out["length"].append(len(ids))
        return out

    workers = min(8, os.cpu_count() or 1) if len(ds) > 50_000 else None  # process start-up costs seconds
    return ds.map(encode, batched=True, num_proc=workers, desc="tokenizing")


def apply_length_policy(ds: datasets.Dataset, max_tokens: int, policy: LongPolicy) -> tuple[datasets.Dataset, str | None]:
    """Reject, truncate or drop sequences over ``max_tokens``; return the data and a report line."""
    lengths = column(ds, "length")
    long_rows = [i for i, n in enumerate(lengths) if n > max_tokens]
    if not long_rows:
        return ds, None
    summary = (f"{len(long_rows)} of {len(ds)} sequences are longer than {max_tokens} tokens "
               f"(longest: {max(lengths[i] for i in long_rows)})")
    if policy == "error":
        raise SFTInputError(f"{summary}; pass --truncate or --drop-long, or raise --context-length")
    if policy == "drop":
        long_set = set(long_rows)
        kept = ds.select([i for i in range(len(ds)) if i not in long_set])
        if len(kept) == 0:
            raise SFTInputError(f"{summary}; dropping them leaves no data")
        return kept, f"{summary}: dropped"
    return ds.map(lambda r: {"input_ids": r["input_ids"][:max_tokens], "length": min(r["length"], max_tokens)},
                  desc="truncating"), f"{summary}: truncated (their EOS and tail carry no loss)"


def split_validation(ds: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out ``fraction`` of the data, by ``problem_id`` when present so threads of one problem stay together."""
    keys = column(ds, "problem_id") if "problem_id" in ds.column_names else list(range(len(ds)))
    unique = sorted(set(keys), key=str)
    random.Random(f"apr-val:{seed}").shuffle(unique)
    n_val = max(1, round(fraction * len(unique)))
    if n_val >= len(unique):
        raise SFTInputError(f"cannot hold out {fraction:.1%} for validation from {len(unique)} problem(s); "
                           "pass --val-data or --val-fraction 0")
    held = set(unique[:n_val])
    val = [i for i, k in enumerate(keys) if k in held]
    held_rows = set(val)
    return ds.select([i for i in range(len(ds)) if i not in held_rows]), ds.select(val)
