"""Markdown that a model, a tool or staff wrote, rendered inert.

Parsed with raw HTML off (`js-default`: `<script>` in the source is shown as text), then
sanitised with nh3: no images (no tracking pixels, no data sent away by URL), only http,
https and mailto links, each with rel="noopener noreferrer nofollow", and no class but
Pygments' token classes on spans (fenced code is highlighted on the server: highlight.py).
Everything else on the page is autoescaped by the templates.

What a text renders to depends on the text alone, and the same texts are rendered again and
again: a page's window for its HTTP page and, a moment later, for its socket's first frame;
for every reconnect and every tab; an answer when it ends and on the next page load. Recent
renderings are kept (`Rendered`), within a budget of characters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from chatapp.web.highlight import TOKEN_CLASSES, highlight

# Raw HTML in the source is shown as text, not parsed; fenced code goes through Pygments.
MARKDOWN = MarkdownIt("js-default", {"highlight": highlight})
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


# Characters of source and HTML kept, for the whole process: a few MB, a few hundred answers.
CACHE_CHARS = 2_000_000


class Rendered:
    """The latest renderings, by their source, the least recently used dropped first; a text
    larger than an eighth of the budget is not kept. Safe from any thread."""

    def __init__(self, budget: int) -> None:
        self.budget, self.size = budget, 0
        self.kept: OrderedDict[str, SafeString] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, text: str) -> SafeString | None:
        with self.lock:
            html = self.kept.get(text)
            if html is not None:
                self.kept.move_to_end(text)
            return html

    def keep(self, text: str, html: SafeString) -> None:
        size = len(text) + len(html)
        if size > self.budget // 8:
            return
        with self.lock:
            if text in self.kept:
                return
            self.kept[text] = html
            self.size += size
            while self.size > self.budget:
                dropped, dropped_html = self.kept.popitem(last=False)
                self.size -= len(dropped) + len(dropped_html)


rendered = Rendered(CACHE_CHARS)


def markdown(text: str) -> SafeString:
    """`text` rendered and made inert, kept for the next time it is shown."""
    html = rendered.get(text)
    if html is None:
        html = render(text)
        rendered.keep(text, html)
    return html


def render(text: str) -> SafeString:
    html = MARKDOWN.render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        allowed_classes={"span": set(TOKEN_CLASSES)},
    )
    return mark_safe(clean)
