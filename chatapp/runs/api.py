"""The Python API, in the spirit of Marvin's `say`:

thread = services.start_thread("welcome", user=user)
run = say(thread, "I want to edit the about page")
run.status, list(run.messages.all()), list(run.steps.all())

`say(thread, "plot it", files=["data.csv"])` attaches files to the message first (paths, or
Django `File` objects with a name).

A run that calls a tool needing approval comes back paused (status "awaiting_approval");
`pending(run)` lists its calls, and `approve(run, call_id)` / `reject(run, call_id, reason)`
decide one — the last decision runs the rest of the answer and returns the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.core.files import File

from chatapp import services
from chatapp.db import db
from chatapp.files import attach
from chatapp.models import Run, Thread
from chatapp.runs import cancellation, store
from chatapp.runs.engine import execute
from chatapp.runs.events import RunEvent
from chatapp.runs.records import ApprovalRecord

EventHandler = Callable[[RunEvent], None]


async def asay(
    thread: Thread,
    text: str,
    *,
    client_id: str | None = None,
    files: Iterable[Any] = (),
    on_event: EventHandler | None = None,
) -> Run:
    """Post `text` (with `files`) to the thread, run the assistants to the end of their
    answer, return the Run."""

    def post() -> tuple[Any, Run]:
        ids = [attachment.pk for attachment in attach_all(thread, files)]
        return services.send_message(thread, text, client_id=client_id, attachments=ids)

    _, run = await db(post)()
    async for event in execute(run.pk):
        if on_event is not None:
            on_event(event)
    run = await Run.objects.select_related("thread__current_assistant").aget(pk=run.pk)
    await thread.arefresh_from_db()
    return run


def say(
    thread: Thread,
    text: str,
    *,
    client_id: str | None = None,
    files: Iterable[Any] = (),
    on_event: EventHandler | None = None,
) -> Run:
    return async_to_sync(asay)(thread, text, client_id=client_id, files=files, on_event=on_event)


def attach_all(thread: Thread, files: Iterable[Any]) -> list[Any]:
    """Each of `files` (a path, or a Django File with a name) as a file of the thread."""
    attached = []
    for each in files:
        if isinstance(each, str | os.PathLike):
            path = Path(each)
            with path.open("rb") as handle:
                attached.append(attach(thread, File(handle), path.name))
        else:
            attached.append(attach(thread, each, Path(each.name or "").name))
    return attached


def cancel(run: Run) -> services.Cancel:
    """Stop an active run, wherever it runs (see services.cancel_run for the outcomes).

    The database flag reaches a run in any process at its next flush or heartbeat; a run in
    this process also stops at once, even while its model is silent.
    """
    outcome = services.cancel_run(run)
    if outcome == services.Cancel.ASKED:
        cancellation.request(run.pk)
    return outcome


def pending(run: Run) -> list[ApprovalRecord]:
    """The tool calls a paused run waits on, in the order the model made them."""
    return [record for _, record in store.pending_approvals(run.pk)]


async def adecide(
    run: Run,
    call_id: str,
    *,
    approved: bool,
    reason: str = "",
    by: Any = None,
    on_event: EventHandler | None = None,
) -> Run:
    """Approve or reject one paused call (`by`: who decided, the thread's owner by default);
    the last decision runs the rest of the answer here. Returns the run as it is then."""

    def decide() -> store.Decided:
        who = (
            by
            if by is not None
            else Thread.objects.select_related("owner").get(pk=run.thread_id).owner
        )
        return store.decide(run.pk, call_id, approved=approved, by=who, reason=reason)

    decided = await db(decide)()
    if decided.resumed:
        async for event in execute(run.pk):
            if on_event is not None:
                on_event(event)
    return await Run.objects.select_related("thread__current_assistant").aget(pk=run.pk)


def approve(run: Run, call_id: str, **options: Any) -> Run:
    return async_to_sync(adecide)(run, call_id, approved=True, **options)


def reject(run: Run, call_id: str, reason: str = "", **options: Any) -> Run:
    return async_to_sync(adecide)(run, call_id, approved=False, reason=reason, **options)
