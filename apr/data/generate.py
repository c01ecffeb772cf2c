"""Dataset jobs: problems for every split, and solver demonstrations (SoS+ or APR) for a split.

Both are resumable sharded jobs (``apr.data.io.ShardedJob``) whose chunks depend only on the seed
and the chunk's indices, so a kill loses at most the chunks in flight and any worker count gives
byte-identical files.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from apr.countdown.problems import SPLIT_ORDER, Problem, ProblemSpec, draw_chunk, load_problems, validate_split_sizes
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.countdown.verifier import verify_trace
from apr.data.io import ShardedJob, atomic_write_bytes, digest
from apr.threads import Thread, flatten

TraceFormat = Literal["sosp", "apr"]
TraceOrder = Literal["shuffled", "canonical"]


# -- problems ----------------------------------------------------------------------------------
def generate_problems(out_dir: Path, spec: ProblemSpec, sizes: dict[str, int], seed: int, workers: int = 1,
                      chunk_size: int = 500, fresh: bool = False, progress: bool = True) -> dict[str, Path]:
    """Write ``{split}.jsonl`` for each split plus ``meta.json``; returns the written paths."""
    validate_split_sizes(sizes)
    out_dir = Path(out_dir)
    taken: set[tuple[tuple[int, ...], int]] = set()
    paths: dict[str, Path] = {}
    for split in SPLIT_ORDER:
        want = sizes.get(split, 0)
        if want == 0:
            continue
        path = out_dir / f"{split}.jsonl"
        fingerprint = {"job": "problems", "spec": asdict(spec), "seed": seed, "split": split, "chunk_size": chunk_size}
        job = ShardedJob(path, draw_chunk, fingerprint, workers, desc=f"problems/{split}", unit="problems",
                         fresh=fresh, progress=progress)
        chosen: list[dict[str, Any]] = []
        start = 0
        while len(chosen) < want:
            # Duplicates are rare; draw a little more than needed, in waves of whole chunks.
            n_chunks = max(1, -(-int((want - len(chosen)) * 1.05 + 1) // chunk_size))
            chunks = [(f"{split}-{s:09d}", (spec, seed, split, s, chunk_size))
                      for s in range(start, start + n_chunks * chunk_size, chunk_size)]
            start += n_chunks * chunk_size
            for rows in job.run(chunks, progress_total=want, weight=lambda a: a[4]):
                for row in rows:
                    problem = Problem.from_dict(row)
                    if problem.key in taken or len(chosen) >= want:
                        continue
                    taken.add(problem.key)
                    chosen.append({**problem.to_dict(), "id": f"{split}-{len(chosen):07d}"})
        job.finish(chosen)
        paths[split] = path
    meta = {"spec": asdict(spec), "seed": seed, "sizes": {s: sizes.get(s, 0) for s in SPLIT_ORDER}}
    atomic_write_bytes(out_dir / "meta.json", (json.dumps(meta, indent=2) + "\n").encode())
    return paths


# -- traces ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceSettings:
    """How demonstrations are drawn. Defaults follow the released APR/SoS+ generator scripts."""

    format: TraceFormat = "apr"
    max_beam: int = 10  # beam ~ U{min_beam..max_beam} per problem (SoS+ scripts use 5)
    max_sub_beam: int = 15  # APR child beam ~ U{beam..max_sub_beam}
    p_spawn: float = 0.9  # APR: chance an expansion with >1 survivors delegates them
    p_dfs: float = 0.5  # SoS+: chance an expansion doubles down into a DFS sub search
    max_depth: int = 1  # APR spawn nesting (the paper: 1)
    min_beam: int = 1  # beam ~ U{min_beam..max_beam}; a wider floor makes APR spawn wider
    order: TraceOrder = "shuffled"  # successors as the reference writes them, or "canonical" (node order)

    def __post_init__(self) -> None:
        if self.format not in ("sosp", "apr"):
            raise ValueError(f"format must be 'sosp' or 'apr', got {self.format!r}")
        if not 1 <= self.min_beam <= self.max_beam or self.max_sub_beam < 1:
            raise ValueError(f"need 1 <= min_beam <= max_beam and max_sub_beam >= 1, got "
                             f"{self.min_beam}, {self.max_beam}, {self.max_sub_beam}")
        if not (0.0 <= self.p_spawn <= 1.0 and 0.0 <= self.p_dfs <= 1.0):
            raise ValueError("probabilities must be in [0, 1]")
        if self.order not in ("shuffled", "canonical"):
            raise ValueError(f"order must be 'shuffled' or 'canonical', got {self.order!r}")
        if self.max_depth < 0:
            raise ValueError("max_depth must be >= 0")


def demonstrate(problem: Problem, settings: TraceSettings, seed: int) -> dict[str, Any]:
    """One demonstration row: the problem, the settings drawn for it, and the thread tree."""
    draw = random.Random(f"{seed}:{settings.format}:beams:{problem.id}")
    rng = random.Random(f"{seed}:{settings.format}:search:{problem.id}")
    beam = draw.randint(settings.min_beam, settings.max_beam)
    nums, target = list(problem.nums), problem.target
    row: dict[str, Any] = {"id": problem.id, "nums": nums, "target": target, "format": settings.format, "beam": beam}
    if settings.format == "sosp":
        text = sosp(nums, target, beam, rng, settings.p_dfs, settings.order == "canonical")
        prompt, _, rest = text.partition("\n")
        root = Thread(id="0", prompt=prompt, finish_reason="eos")
        root.add_span("gen", "\n" + rest)
        solved = verify_trace(text, nums, target).ok
    else:
        sub_beam = draw.randint(min(beam, settings.max_sub_beam), settings.max_sub_beam)
        row["sub_beam"] = sub_beam
        root = apr_search(nums, target, AprSettings(beam, sub_beam, settings.p_spawn, settings.max_depth,
                                                             settings.order == "canonical"), rng)
        solved = verify_trace(root.context(), nums, target).ok
        if solved != root.meta["solved"]:
            raise AssertionError(f"solver and verifier disagree on problem {problem.id}")
    row["solved"] = solved
    row["threads"] = flatten(root)
    return row


def _demonstrate_chunk(args: tuple[list[dict[str, Any]], TraceSettings, int]) -> list[dict[str, Any]]:
    rows, settings, seed = args
    return [demonstrate(Problem.from_dict(r), settings, seed) for r in rows]


def generate_traces(problems_path: Path, out_path: Path, settings: TraceSettings, seed: int, workers: int = 1,
                    chunk_size: int = 200, limit: int | None = None, fresh: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    """Write one demonstration per problem; returns a small summary."""
    problems = [p.to_dict() for p in load_problems(problems_path)][:limit]
    if not problems:
        raise ValueError(f"{problems_path} holds no problems")
    fingerprint = {"job": "traces", "settings": asdict(settings), "seed": seed, "chunk_size": chunk_size,
                   "problems": digest(problems), "n_problems": len(problems)}
    chunks = [(f"{settings.format}-{i:09d}", (problems[i:i + chunk_size], settings, seed))
              for i in range(0, len(problems), chunk_size)]
    job = ShardedJob(out_path, _demonstrate_chunk, fingerprint, workers, desc=f"traces/{settings.format}",
                     unit="traces", fresh=fresh, progress=progress)
    rows = [r for chunk in job.run(chunks, progress_total=len(problems), weight=lambda a: len(a[0])) for r in chunk]
    job.finish(rows)
    solved = sum(r["solved"] for r in rows)
    return {"traces": len(rows), "solved": solved, "success_rate": solved / max(1, len(rows)), "path": str(out_path)}
