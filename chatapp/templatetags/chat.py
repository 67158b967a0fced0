from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.safestring import SafeString

from chatapp.web.markdown import markdown as render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Sanitised Markdown: raw HTML off, no images, safe link schemes only."""
    return render_markdown(text or "")


@register.filter
def minutes(span: timedelta | None) -> str:
    """A wait in plain words: `15 minutes`, `1 minute`."""
    if span is None:
        return ""
    count = max(1, round(span.total_seconds() / 60))
    return f"{count} minute{'s' * (count != 1)}"
