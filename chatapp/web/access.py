"""Who may see which thread: one rule for pages and websockets alike.

A user reaches only threads they own. Callers look a thread up *inside* `owned_threads(user)`
(a socket's connect through `owned_thread`, the same rule compiled once), so another user's
thread and a thread that does not exist give the same answer (a 404, a closed socket) and a
thread id never reveals whether it exists. A socket stays open only while the session it was
opened with still signs its user in (`still_signed_in`). Logins are throttled per username
and `client_address`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import QuerySet
from django.utils.crypto import constant_time_compare

from chatapp.compiled import Compiled
from chatapp.models import Thread


def signed_in(user: Any) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def owned_threads(user: Any) -> QuerySet[Thread]:
    """The threads `user` may see and change; none for an anonymous or missing user."""
    return Thread.objects.filter(owner=user) if signed_in(user) else Thread.objects.none()


def owned_thread(user: Any, thread_id: Any) -> Thread | None:
    """The thread `thread_id` if `user` may see it (with its current assistant): what a page's
    socket reads on every connect, compiled once (chatapp/compiled.py)."""
    if not signed_in(user):
        return None
    found = _owned_thread.list(owner_id=user.pk, thread_id=thread_id)
    return found[0] if found else None


_owned_thread = Compiled(
    lambda owner_id, thread_id: Thread.objects.select_related("current_assistant").filter(
        owner_id=owner_id, pk=thread_id
    ),
    owner_id=Thread._meta.get_field("owner"),
    thread_id=Thread._meta.pk,
)


def still_signed_in(session_key: str | None, user_id: Any) -> bool:
    """Whether the session a socket was opened with still signs in the same user: not logged
    out (or expired), the user still active, the password unchanged since (Django's session
    hash, as `django.contrib.auth.get_user` checks it on every request)."""
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = store.load()  # {} when the session is gone or expired
    if str(data.get(SESSION_KEY)) != str(user_id):
        return False
    found = active_user.list(user_id=user_id)
    if not found:
        return False
    user = found[0]
    known = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(known, each) for each in hashes)


# Every frame a page sends reads its user again: compiled once (chatapp/compiled.py).
active_user = Compiled(
    lambda user_id: get_user_model().objects.filter(pk=user_id, is_active=True)[:1],
    user_id=get_user_model()._meta.pk,
)


def client_address(request: Any) -> str | None:
    """The address a request came from, for login throttling. Behind our proxy that is the
    address the proxy appended to X-Forwarded-For (the right-most: anything to its left was
    sent by the client and may be made up); otherwise the connection's own."""
    if settings.BEHIND_HTTPS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if last := forwarded.rsplit(",", 1)[-1].strip():
            return last
    return request.META.get("REMOTE_ADDR")
