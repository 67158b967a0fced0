"""Who may see which thread: one rule for pages and websockets alike.

A user reaches only threads they own. Callers look a thread up *inside* `owned_threads(user)`,
so another user's thread and a thread that does not exist give the same answer (a 404, a
closed socket) and a thread id never reveals whether it exists.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from chatapp.models import Thread


def owned_threads(user: Any) -> QuerySet[Thread]:
    """The threads `user` may see and change; none for an anonymous or missing user."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Thread.objects.none()
    return Thread.objects.filter(owner=user)
