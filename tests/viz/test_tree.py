import json
import random
import re
from html.parser import HTMLParser

from rich.console import Console

from apr.countdown.search import AprSettings, apr_search
from apr.threads import Thread, critical_path
from apr.viz.tree import html_page, rich_view


def demo() -> Thread:
    root = apr_search([22, 26, 31, 53], 27, AprSettings(2, 2, 0.9, 1), random.Random(0))
    root.children[1].events.append("cancelled by early join")
    return root


def test_terminal_view_shows_every_thread_and_marks_the_critical_path():
    root = demo()
    console = Console(record=True, width=120)
    console.print(rich_view(root, show_text=True))
    out = console.export_text()
    for thread in root.walk():
        assert f"thread {thread.id}" in out
    on_path = critical_path(root, len)[1]
    assert f"★ thread {on_path[-1]}" in out
    assert "cancelled by early join" in out and "sequential tokens" in out
    assert "<Calling Sub Searches>" in out


def test_html_page_is_self_contained_valid_and_embeds_the_tree():
    root = demo()
    root.spans[0].text += "<script>alert(1)</script>"  # model text must be escaped
    page = html_page(root, "27 from 22 26 31 53")

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.threads, self.external = [], 0, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag not in ("meta", "br"):
                self.stack.append(tag)
            self.threads += "thread" in (attrs.get("class") or "").split()
            self.external += [v for k, v in attrs.items() if k in ("src", "href")]

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    checker = Checker()
    checker.feed(page)
    assert checker.stack == [] and checker.external == []
    assert checker.threads == len(list(root.walk()))
    assert "<script>alert(1)</script>" not in page
    embedded = re.search(r"<script type='application/json' id='tree'>(.*?)</script>", page, re.S).group(1)
    import html as h

    assert Thread.from_dict(json.loads(h.unescape(embedded))).context() == root.context()
