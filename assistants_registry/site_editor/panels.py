"""The page preview beside a site-editor thread: the page as it is in the database now."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from assistants_registry.site_editor.models import Page


def page_preview(thread: Any) -> SafeString | str:
    page_id = (thread.metadata or {}).get("page_id")
    if not page_id:
        return ""
    page = Page.objects.filter(slug=page_id).first()
    html = render_to_string("site_editor/preview.html", {"page": page, "page_id": page_id})
    return mark_safe(html)
