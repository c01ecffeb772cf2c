"""The thread tree: one data model for demonstrations, inference rollouts and RL episodes.

A thread has a prompt and a list of spans. Spans are either text the model generated (``gen``),
a spawn block the model generated (``spawn``, always followed by a spawn's children), or a join
block the orchestrator inserted (``join``). After a join, the spawn block it answers is no longer
part of the thread's context: the parent continues from ``context before spawn + join block``,
exactly as the paper's ``main_calls[k]`` sequences do.

Every LM call of a thread is a *segment*: its input is the visible context so far, its output the
model-generated text up to the next spawn block (inclusive) or the end. Segments are what SFT
trains on and what GRPO assigns advantages to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

SpanKind = Literal["gen", "spawn", "join"]
TokenCounter = Callable[[str], int]


@dataclass
class Span:
    """A contiguous piece of a thread's text and who wrote it."""

    kind: SpanKind
    text: str
    n_tokens: int | None = None  # filled by the runtime (token-exact) or a tokenizer pass

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.n_tokens is not None:
            out["n_tokens"] = self.n_tokens
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Span":
        if d.get("kind") not in ("gen", "spawn", "join"):
            raise ValueError(f"span kind must be gen, spawn or join, got {d.get('kind')!r}")
        return cls(kind=d["kind"], text=d["text"], n_tokens=d.get("n_tokens"))


@dataclass
class Segment:
    """One LM call: ``prompt`` (everything the model saw) and ``completion`` (what it wrote)."""

    thread_id: str
    index: int
    prompt: str
    completion: str
    # Character ranges of ``prompt`` the orchestrator inserted (join blocks); useful for masks.
    inserted: list[tuple[int, int]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.prompt + self.completion


@dataclass
class Thread:
    """A node of the tree: one reasoning thread with its own isolated context."""

    id: str
    prompt: str
    spans: list[Span] = field(default_factory=list)
    spawns: list[list["Thread"]] = field(default_factory=list)  # children of the k-th spawn span
    finish_reason: str | None = None  # eos, stop, length, context, timeout, cancelled, error, ...
    meta: dict[str, Any] = field(default_factory=dict)  # task data (node id, state), timings, ...
    events: list[str] = field(default_factory=list)  # policy decisions, e.g. "truncated spawn to 8"
    prompt_tokens: int | None = None

    # -- structure -------------------------------------------------------------------------
    def walk(self) -> Iterator["Thread"]:
        """Depth-first, parent before children, children in spawn order."""
        yield self
        for children in self.spawns:
            for child in children:
                yield from child.walk()

    @property
    def children(self) -> list["Thread"]:
        return [c for group in self.spawns for c in group]

    def add_span(self, kind: SpanKind, text: str, n_tokens: int | None = None) -> Span:
        span = Span(kind, text, n_tokens)
        self.spans.append(span)
        return span

    # -- text views ------------------------------------------------------------------------
    def context(self) -> str:
        """What the model sees now: prompt plus spans, minus spawn blocks already joined."""
        return self.prompt + "".join(s.text for s in self._visible_spans())

    def _visible_spans(self) -> list[Span]:
        visible: list[Span] = []
        for i, span in enumerate(self.spans):
            answered = span.kind == "spawn" and any(s.kind == "join" for s in self.spans[i + 1 :])
            if not answered:
                visible.append(span)
        return visible

    def generated_text(self) -> str:
        """All text the model wrote in this thread, spawn blocks included."""
        return "".join(s.text for s in self.spans if s.kind != "join")

    def segments(self) -> list[Segment]:
        """One segment per LM call, in the paper's ``main_calls`` layout."""
        segments: list[Segment] = []
        context = self.prompt
        inserted: list[tuple[int, int]] = []
        completion = ""
        for span in self.spans:
            if span.kind == "join":
                start = len(context)
                context += span.text
                inserted.append((start, len(context)))
                continue
            completion += span.text
            if span.kind == "spawn":
                segments.append(Segment(self.id, len(segments), context, completion, list(inserted)))
                # The continuation re-uses the context before the spawn block, not the block.
                context += completion[: len(completion) - len(span.text)]
                completion = ""
        if completion or not segments or self.spans and self.spans[-1].kind == "join":
            segments.append(Segment(self.id, len(segments), context, completion, list(inserted)))
        return segments

    # -- token accounting ------------------------------------------------------------------
    def generated_tokens(self, count: TokenCounter | None = None) -> int:
        return sum(_span_tokens(s, count) for s in self.spans if s.kind != "join")

    def inserted_tokens(self, count: TokenCounter | None = None) -> int:
        return sum(_span_tokens(s, count) for s in self.spans if s.kind == "join")

    def prompt_token_count(self, count: TokenCounter | None = None) -> int:
        if self.prompt_tokens is not None:
            return self.prompt_tokens
        if count is None:
            raise ValueError(f"thread {self.id} has no token counts; pass a token counter")
        return count(self.prompt)

    def longest_context(self, count: TokenCounter | None = None) -> int:
        """Largest context any segment of this thread needed (prompt + completion tokens)."""
        best = 0
        ctx = self.prompt_token_count(count)
        pending = 0
        for span in self.spans:
            n = _span_tokens(span, count)
            pending += n
            best = max(best, ctx + pending)
            if span.kind == "join":
                ctx += pending
                pending = 0
            elif span.kind == "spawn":
                ctx += pending - n
                pending = 0
        return max(best, ctx + pending)

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "spans": [s.to_dict() for s in self.spans]}
        if self.spawns:
            out["spawns"] = [[c.to_dict() for c in group] for group in self.spawns]
        for key in ("finish_reason", "prompt_tokens"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.meta:
            out["meta"] = self.meta
        if self.events:
            out["events"] = self.events
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Thread":
        try:
            return cls(
                id=str(d["id"]),
                prompt=d["prompt"],
                spans=[Span.from_dict(s) for s in d.get("spans", [])],
                spawns=[[cls.from_dict(c) for c in group] for group in d.get("spawns", [])],
                finish_reason=d.get("finish_reason"),
                meta=dict(d.get("meta", {})),
                events=list(d.get("events", [])),
                prompt_tokens=d.get("prompt_tokens"),
            )
        except KeyError as e:
            raise ValueError(f"thread record is missing field {e.args[0]!r}") from None


def _span_tokens(span: Span, count: TokenCounter | None) -> int:
    if span.n_tokens is not None:
        return span.n_tokens
    if count is None:
        raise ValueError("span has no token count; pass a token counter")
    return count(span.text)


@dataclass
class TreeMetrics:
    """The paper's efficiency metrics for one tree (all in tokens)."""

    total_tokens: int  # every token processed once: prompts, generations, join blocks
    generated_tokens: int  # tokens the model decoded, across all threads
    sequential_tokens: int  # decoded tokens on the longest causal chain (critical path)
    longest_context: int  # largest context window any single LM call needed
    n_threads: int
    n_spawns: int
    children_per_spawn: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def critical_path(thread: Thread, count: TokenCounter | None = None) -> tuple[int, list[str]]:
    """Decoded tokens on the longest causal chain from ``thread``, and the thread ids on it.

    A parent's decoding waits for the slowest child of each spawn, so the chain is the parent's
    own generated tokens plus, per spawn, the longest child chain.
    """
    length = thread.generated_tokens(count)
    path = [thread.id]
    for children in thread.spawns:
        if not children:
            continue
        best = max((critical_path(c, count) for c in children), key=lambda r: r[0])
        length += best[0]
        path += best[1]
    return length, path


def tree_metrics(root: Thread, count: TokenCounter | None = None) -> TreeMetrics:
    threads = list(root.walk())
    spawns = [group for t in threads for group in t.spawns]
    total = sum(t.prompt_token_count(count) + t.generated_tokens(count) + t.inserted_tokens(count) for t in threads)
    return TreeMetrics(
        total_tokens=total,
        generated_tokens=sum(t.generated_tokens(count) for t in threads),
        sequential_tokens=critical_path(root, count)[0],
        longest_context=max(t.longest_context(count) for t in threads),
        n_threads=len(threads),
        n_spawns=len(spawns),
        children_per_spawn=(sum(len(g) for g in spawns) / len(spawns)) if spawns else 0.0,
    )


# -- flat form -------------------------------------------------------------------------------
# Data files store a tree as a flat list of thread rows with parent links: every row has the
# same fields, so Arrow/Parquet (and `datasets.load_dataset`) see one fixed schema however deep
# the tree is. Runtime-only data (meta, events) lives in the nested form.
def shape(thread: Thread) -> dict[str, Any]:
    """What a tree says, without timings or token counts: prompts, spans, finish reasons, events.
    Two backends decoded the same tree when their shapes are equal."""
    return {
        "id": thread.id, "prompt": thread.prompt, "finish": thread.finish_reason, "events": thread.events,
        "spans": [(s.kind, s.text) for s in thread.spans],
        "spawns": [[shape(c) for c in group] for group in thread.spawns],
    }


def flatten(root: Thread) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def visit(thread: Thread, parent: str | None, spawn: int) -> None:
        rows.append({
            "id": thread.id,
            "parent": parent,
            "spawn": spawn,
            "prompt": thread.prompt,
            "spans": [{"kind": s.kind, "text": s.text} for s in thread.spans],
            "finish_reason": thread.finish_reason,
        })
        for k, group in enumerate(thread.spawns):
            for child in group:
                visit(child, thread.id, k)

    visit(root, None, -1)
    return rows


def unflatten(rows: list[dict[str, Any]]) -> Thread:
    """Rebuild a tree from ``flatten`` rows (parents always precede their children)."""
    if not rows:
        raise ValueError("a thread tree needs at least one thread")
    threads: dict[str, Thread] = {}
    root: Thread | None = None
    for row in rows:
        try:
            thread = Thread(id=row["id"], prompt=row["prompt"],
                            spans=[Span.from_dict(s) for s in row["spans"]],
                            finish_reason=row.get("finish_reason"))
            parent, spawn = row.get("parent"), row.get("spawn", -1)
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed thread row {row.get('id')!r}: {e}") from None
        if thread.id in threads:
            raise ValueError(f"duplicate thread id {thread.id!r}")
        threads[thread.id] = thread
        if parent is None:
            if root is not None:
                raise ValueError("a thread tree has exactly one root")
            root = thread
            continue
        if parent not in threads:
            raise ValueError(f"thread {thread.id!r} names unknown parent {parent!r}")
        groups = threads[parent].spawns
        while len(groups) <= spawn:
            groups.append([])
        groups[spawn].append(thread)
    assert root is not None
    return root
