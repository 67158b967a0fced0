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


def grant(user: Any, *permissions: str) -> Any:
    """Give `user` Django permissions named "app_label.codename"; the user, reloaded."""
    from django.contrib.auth.models import Permission

    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)  # permissions are cached on the object


SITE_EDITOR = ("site_editor.view_page", "site_editor.change_page", "site_editor.publish_page")
