"""Markdown that a model, a tool or staff wrote, rendered inert.

Parsed with raw HTML off (`js-default`: `<script>` in the source is shown as text), then
sanitised with nh3: no images (no tracking pixels, no data sent away by URL), only http,
https and mailto links, each with rel="noopener noreferrer nofollow". Everything else on the
page is autoescaped by the templates.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

MARKDOWN = MarkdownIt("js-default")  # raw HTML in the source is shown as text, not parsed
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def markdown(text: str) -> SafeString:
    html = MARKDOWN.render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)
