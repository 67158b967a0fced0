"""A user's open pages hear at once when the user logs out, is deactivated or changes their
password (Django's signals, through the hub to every process): the page of the session that
logged out closes, and every other page checks its session again and closes if it no longer
signs the user in. Every frame a page sends is checked too, so nothing depends on hearing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save

from chatapp.web.hub import hub

logger = logging.getLogger(__name__)


def connect() -> None:
    user_logged_out.connect(logged_out, weak=False, dispatch_uid="chatapp-pages-logout")
    post_save.connect(
        user_saved, sender=get_user_model(), weak=False, dispatch_uid="chatapp-pages-user"
    )


def logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Sent before the session is flushed: name the session, do not ask pages to check it.
    if user is not None and request is not None and request.session.session_key:
        tell(user.pk, {"type": "chat.session_ended", "session": request.session.session_key})


def user_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields and set(update_fields) <= {"last_login"}:  # every login saves this
        return
    user_id = instance.pk
    transaction.on_commit(lambda: tell(user_id, {"type": "chat.check_session"}))


def tell(user_id: Any, message: dict[str, Any]) -> None:
    async def send() -> None:
        await hub().tell_user(user_id, message)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a view's or a command's thread: the usual case
        try:
            async_to_sync(send)()
        except Exception:  # no page hears it: each checks its session at its next frame anyway
            logger.exception("Telling the pages of user %s failed", user_id)
    else:  # saved from inside an event loop (async code that saves synchronously)
        task = loop.create_task(send())
        _telling.add(task)
        task.add_done_callback(_telling.discard)


_telling: set[asyncio.Task[None]] = set()  # tasks are weakly held by the loop
