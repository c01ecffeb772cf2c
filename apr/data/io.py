"""Files that survive a kill: atomic writes, readers with precise errors, resumable sharded jobs.

Long jobs split their work into deterministic chunks. Each finished chunk is written atomically
as one shard under ``<output>.partial/``; a re-run reads finished shards back instead of redoing
them, and the final file is assembled (atomically) only when every chunk is done. Because chunk
contents depend only on the chunk, the output is byte-identical whatever the number of workers.
A job records the fingerprint of its inputs and settings beside its shards and refuses to resume
shards that another fingerprint produced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from tqdm import tqdm

Row = dict[str, Any]


class DataFileError(ValueError):
    """A data file that is missing, truncated or not in the expected format."""


# -- atomic writes -----------------------------------------------------------------------------
def default_file_mode() -> int:
    """The mode ``open()`` would give a new file (0644 under the usual umask); temp files get 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())  # others may read what we write, as with a plain open()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_jsonl(rows: Iterable[Row]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


def write_rows(path: Path, rows: Sequence[Row]) -> None:
    """Write rows atomically as JSONL, or Parquet when the name ends in ``.parquet``."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(list(rows)), buffer)
        atomic_write_bytes(path, buffer.getvalue().to_pybytes())
    else:
        atomic_write_bytes(path, dumps_jsonl(rows).encode())


# -- readers -----------------------------------------------------------------------------------
def read_rows(path: Path) -> list[Row]:
    """Read a JSONL or Parquet file; errors name the file, the line and what to do."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".jsonl", ".parquet"))[:3]
        raise DataFileError(f"{path} is a folder; pass one of its files" + (f" ({', '.join(found)})" if found else ""))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataFileError(f"{path}: not a readable Parquet file ({e}); regenerate it") from None
    else:
        rows = list(iter_jsonl(path))
    if not rows:
        raise DataFileError(f"{path} is empty: it holds no rows")
    return rows


def iter_jsonl(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                hint = " (the file looks truncated; regenerate it)" if not line.endswith("\n") else ""
                raise DataFileError(f"{path}:{n}: invalid JSON: {e.msg}{hint}") from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}")
            yield row


def require_fields(path: Path, rows: list[Row], fields: Sequence[str], what: str) -> None:
    for n, row in enumerate(rows, start=1):
        missing = [f for f in fields if f not in row]
        if missing:
            raise DataFileError(f"{path}: row {n} has no {', '.join(missing)}; is this a {what} file?")


# -- resumable sharded jobs --------------------------------------------------------------------
def partial_dir(output: Path) -> Path:
    return Path(str(output) + ".partial")


def digest(value: Any) -> str:
    """A short content hash of JSON-able ``value`` (e.g. the rows a job reads), for fingerprints."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def check_fingerprint(meta: Path, fingerprint: dict[str, Any], holder: Path) -> None:
    """Record what produced the work kept in ``holder``, or refuse work that something else produced."""
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back: tuples are lists
    if meta.exists():
        old = json.loads(meta.read_text())
        if old != fingerprint:
            changed = sorted(k for k in old.keys() | fingerprint.keys() if old.get(k) != fingerprint.get(k))
            raise ValueError(f"{holder} holds the work of a different run (differs in: {', '.join(changed)}); "
                             "pass --fresh to discard it, or choose another --out")
    else:
        atomic_write_bytes(meta, (json.dumps(fingerprint, indent=2) + "\n").encode())


class ShardedJob:
    """Apply ``fn`` to chunks in order, in a process pool, keeping each result as a shard file.

    ``fingerprint`` names everything the shards depend on (inputs, settings, chunking); ``fresh``
    discards shards left by an earlier run instead of resuming them.
    """

    def __init__(self, output: Path, fn: Callable[[Any], list[Row]], fingerprint: dict[str, Any],
                 workers: int = 1, desc: str = "", unit: str = "chunks", fresh: bool = False, progress: bool = True):
        self.output = Path(output)
        self.dir = partial_dir(self.output)
        self.fn, self.workers, self.desc, self.unit = fn, max(1, workers), desc, unit
        self.progress = progress  # False: no bar even on a terminal (True: one where stderr is a terminal)
        self.fingerprint = fingerprint
        if fresh:
            shutil.rmtree(self.dir, ignore_errors=True)

    def shard_path(self, key: str) -> Path:
        return self.dir / f"{key}.jsonl"

    def run(self, chunks: Sequence[tuple[str, Any]], progress_total: int | None = None,
            weight: Callable[[Any], int] = lambda _: 1) -> Iterator[list[Row]]:
        """Yield each chunk's rows in chunk order; finished shards are read back, not recomputed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "job.json"
        if not meta.exists() and any(self.dir.glob("*.jsonl")):
            raise ValueError(f"{self.dir} holds shards of an unknown run (no job.json); "
                             "pass --fresh to discard them, or choose another --out")
        check_fingerprint(meta, self.fingerprint, self.dir)
        todo = [(key, arg) for key, arg in chunks if not self.shard_path(key).exists()]
        done_weight = sum(weight(arg) for key, arg in chunks if self.shard_path(key).exists())
        bar = tqdm(total=progress_total, initial=done_weight, desc=self.desc, unit=self.unit,
                   dynamic_ncols=True, disable=None if self.progress else True)
        results = self._compute(todo)
        try:
            for key, arg in chunks:
                path = self.shard_path(key)
                if path.exists():
                    rows = list(iter_jsonl(path))
                else:
                    rows = next(results)
                    atomic_write_bytes(path, dumps_jsonl(rows).encode())
                    bar.update(weight(arg))
                yield rows
        finally:
            bar.close()
            results.close()

    def _compute(self, todo: list[tuple[str, Any]]) -> Iterator[list[Row]]:
        args = [arg for _, arg in todo]
        if self.workers == 1 or len(args) <= 1:
            for arg in args:
                yield self.fn(arg)
            return
        with get_context("spawn").Pool(self.workers) as pool:
            yield from pool.imap(self.fn, args)

    def finish(self, rows: Sequence[Row]) -> None:
        """Write the final output atomically, then drop the shards."""
        write_rows(self.output, rows)
        shutil.rmtree(self.dir, ignore_errors=True)
