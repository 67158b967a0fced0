"""Markdown that a model, a tool or staff wrote, rendered inert.

Parsed with raw HTML off (`js-default`: `<script>` in the source is shown as text), then
sanitised with nh3: no images (no tracking pixels, no data sent away by URL), only http,
https and mailto links, each with rel="noopener noreferrer nofollow", and no class but
Pygments' token classes on spans (fenced code is highlighted on the server: highlight.py).
Everything else on the page is autoescaped by the templates.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from chatapp.web.highlight import TOKEN_CLASSES, highlight

# Raw HTML in the source is shown as text, not parsed; fenced code goes through Pygments.
MARKDOWN = MarkdownIt("js-default", {"highlight": highlight})
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def markdown(text: str) -> SafeString:
    html = MARKDOWN.render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        allowed_classes={"span": set(TOKEN_CLASSES)},
    )
    return mark_safe(clean)
