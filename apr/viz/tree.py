"""Views of a thread tree for people: a rich terminal tree and a self-contained HTML page.

Both show, per thread, its tokens, timing and finish reason, mark the critical path (the chain
of threads whose decoding the wall time waits on), and summarise the tree's metrics. The same
views serve trained APR trees (``apr solve``) and prompted runs (``apr ask``: a thread's task and
verdict, and a one-line preview of each span).
"""

from __future__ import annotations

import html
import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from apr.threads import Thread, TokenCounter, critical_path, tree_metrics

_KIND_STYLE = {"gen": "", "spawn": "bold cyan", "join": "green"}
_OK = ("stop", "eos")


def _label(thread: Thread, count: TokenCounter, on_path: bool) -> Text:
    label = Text("★ " if on_path else "  ", style="bold yellow")
    label.append(f"thread {thread.id}", style="bold" if on_path else "")
    if "node" in thread.meta:
        label.append(f"  node #{thread.meta['node']}", style="dim")
    if "task" in thread.meta:
        label.append(f"  {short(thread.meta['task'], 60)}")
    label.append(f"  {thread.generated_tokens(count)} tok")
    if "wall_s" in thread.meta:
        start = f" from {thread.meta['t_start']:.2f}s" if "t_start" in thread.meta and "task" in thread.meta else ""
        label.append(f"  {thread.meta['wall_s']:.2f}s{start}")
    if thread.finish_reason:
        label.append(f"  {thread.finish_reason}", style="dim" if thread.finish_reason in _OK else "red")
    if "verdict" in thread.meta:
        label.append(f"  verdict: {thread.meta['verdict']}")
    for event in thread.events:
        label.append(f"  ⚠ {event}", style="red")
    return label


def short(text: str, n: int) -> str:
    """``text`` on one line, cut to ``n`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def rich_tree(root: Thread, count: TokenCounter | None = None, show_text: bool = False,
              preview: int | None = None) -> Tree:
    """The tree of threads; ``show_text``: every thread's whole text, ``preview``: one line per span."""
    count = count or len  # counts recorded on spans win; characters as a last resort
    on_path = set(critical_path(root, count)[1])

    def spawn(node: Tree, k: int, group: list[Thread], plan: str = "") -> None:
        branch = node.add(Text(f"spawn {k + 1}: {len(group)} children{plan}", style="cyan"))
        for child in group:
            build(child, branch.add(_label(child, count, child.id in on_path)))

    def build(thread: Thread, node: Tree) -> None:
        if show_text:
            body = Text()
            for span in thread.spans:
                body.append(span.text, style=_KIND_STYLE[span.kind])
            node.add(Text(thread.prompt, style="dim")).add(body)
        if preview is None:
            for k, group in enumerate(thread.spawns):
                spawn(node, k, group)
            return
        groups = iter(enumerate(thread.spawns))
        for span in thread.spans:
            tokens = span.n_tokens if span.n_tokens is not None else count(span.text)
            if span.kind == "spawn":
                k, group = next(groups)
                spawn(node, k, group, f" · {tokens} tok: {short(span.text, preview)}" if span.text else "")
            else:
                node.add(Text(f"{span.kind} {tokens} tok: {short(span.text, preview)}", style=_KIND_STYLE[span.kind]))

    tree = Tree(_label(root, count, True))
    build(root, tree)
    return tree


def metrics_table(root: Thread, count: TokenCounter | None = None, extra: dict[str, Any] | None = None) -> Table:
    m = tree_metrics(root, count or len)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column(justify="right")
    rows = {
        "threads": m.n_threads,
        "spawns": m.n_spawns,
        "children per spawn": f"{m.children_per_spawn:.1f}",
        "total tokens": m.total_tokens,
        "generated tokens": m.generated_tokens,
        "sequential tokens (critical path)": m.sequential_tokens,
        "longest context": m.longest_context,
        **(extra or {}),
    }
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def rich_view(root: Thread, count: TokenCounter | None = None, show_text: bool = False,
              extra: dict[str, Any] | None = None) -> Group:
    return Group(rich_tree(root, count, show_text), Text(""), metrics_table(root, count, extra))


# -- HTML -------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2433;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px} .sub{color:#667;margin-bottom:16px}
table.m{border-collapse:collapse;margin-bottom:20px} table.m td{padding:2px 14px 2px 0}
table.m td:first-child{color:#667}
.thread{border:1px solid #d0d7de;border-radius:8px;background:#fff;margin:6px;padding:8px;min-width:260px}
.thread.crit{border:2px solid #d4a017;box-shadow:0 0 0 2px #fff3c4}
.head{font-weight:600;cursor:pointer;user-select:none} .head .dim{color:#667;font-weight:400}
.ev{color:#b42318;font-weight:400}
pre{white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace;margin:6px 0 0;max-height:420px;overflow:auto}
.prompt{color:#667} .spawn{color:#0969da;font-weight:600} .join{background:#e8f5e9;color:#1a7f37}
.kids{display:flex;flex-wrap:wrap;align-items:flex-start;border-left:3px solid #0969da33;margin:6px 0 0 6px;padding-left:4px}
.label{color:#0969da;font-size:12px;margin:6px 0 0 8px}
.collapsed>pre,.collapsed>.kids,.collapsed>.label{display:none}
"""

_JS = "document.querySelectorAll('.head').forEach(h=>h.onclick=()=>h.parentElement.classList.toggle('collapsed'))"


def _thread_html(thread: Thread, count: TokenCounter, on_path: set[str]) -> str:
    bits = [f"{thread.generated_tokens(count)} tok"]
    if "wall_s" in thread.meta:
        bits.append(f"{thread.meta['wall_s']:.2f}s")
    if thread.finish_reason:
        bits.append(html.escape(thread.finish_reason))
    node = f" · node #{html.escape(str(thread.meta['node']))}" if "node" in thread.meta else ""
    events = "".join(f' <span class="ev">⚠ {html.escape(e)}</span>' for e in thread.events)
    parts = [
        f'<div class="thread{" crit" if thread.id in on_path else ""}">',
        f'<div class="head">{"★ " if thread.id in on_path else ""}thread {html.escape(thread.id)}'
        f'<span class="dim">{node} · {" · ".join(bits)}</span>{events}</div>',
    ]
    # Text in reading order: each spawn's children appear right after its spawn block.
    text = [f'<span class="prompt">{html.escape(thread.prompt)}</span>']
    groups = iter(thread.spawns)
    for span in thread.spans:
        text.append(f'<span class="{span.kind}">{html.escape(span.text)}</span>')
        group = next(groups, None) if span.kind == "spawn" else None
        if group is not None:
            parts.append(f"<pre>{''.join(text)}</pre>")
            text = []
            parts.append(f'<div class="label">{len(group)} children</div><div class="kids">')
            parts += [_thread_html(c, count, on_path) for c in group]
            parts.append("</div>")
    if text:
        parts.append(f"<pre>{''.join(text)}</pre>")
    parts.append("</div>")
    return "".join(parts)


def html_page(root: Thread, title: str = "apr thread tree", count: TokenCounter | None = None,
              extra: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page (no external assets) showing the whole tree."""
    count = count or len  # counts recorded on spans win; characters as a last resort
    on_path = set(critical_path(root, count)[1])
    m = tree_metrics(root, count)
    rows = {**m.to_dict(), **(extra or {})}
    table = "".join(f"<tr><td>{html.escape(str(k)).replace('_', ' ')}</td><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows.items())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<div class='sub'>★ marks the critical path. Blue: spawn blocks the model wrote. "
        f"Green: join blocks the runtime inserted. Click a thread's header to fold it.</div>"
        f"<table class='m'>{table}</table>{_thread_html(root, count, on_path)}"
        f"<script>{_JS}</script><script type='application/json' id='tree'>"
        f"{html.escape(json.dumps(root.to_dict()))}</script></body></html>"
    )
