from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from chatapp.web.markdown import markdown as render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Sanitised Markdown: raw HTML off, no images, safe link schemes only."""
    return render_markdown(text or "")
