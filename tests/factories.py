"""Small helpers to build assistants and rules for tests."""

from __future__ import annotations

from typing import Any

from chatapp.models import Assistant, HandoffRule


def assistant(slug: str, *, provider: str = "scripted", **fields: Any) -> Assistant:
    fields.setdefault("name", slug.replace("-", " ").title())
    fields.setdefault("instructions", f"You are {fields['name']}.")
    return Assistant.objects.create(slug=slug, provider=provider, **fields)


def rule(source: Assistant, target: Assistant, **fields: Any) -> HandoffRule:
    return HandoffRule.objects.create(source=source, target=target, **fields)
