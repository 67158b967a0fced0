"""Django's database sessions, with the session's row read through a query compiled once.

A page's every frame checks its session again (`web/access.still_signed_in`), and so does
every request: the read is the same each time, so it is built and compiled to SQL once
(chatapp/compiled.py) instead of for each frame. Rows, expiry and everything else are
Django's own (`SESSION_ENGINE = "chatapp.sessions"`). It overrides the store's one read,
`_get_session_from_db`: tests/test_compiled.py compares what it loads, and when it forgets
a key, with Django's own store, so a Django that changes that method fails there first.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from chatapp.compiled import Compiled

live_session = Compiled(
    lambda key, now: Session.objects.filter(session_key=key, expire_date__gt=now),
    key=Session._meta.pk,
    now=Session._meta.get_field("expire_date"),
)


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        """The session's row while it has not expired; else None, and the key is forgotten
        (as Django's own store does)."""
        found = live_session.list(key=self.session_key, now=timezone.now())
        if found:
            return found[0]
        self._session_key = None
        return None
