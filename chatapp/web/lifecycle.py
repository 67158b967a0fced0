"""Keeping open pages true when runs end without finishing: this server process shutting
down, and runs whose process died.

- On SIGTERM or SIGINT, Daphne stops its Twisted reactor; before it does, `stop_runs()`
  cancels this process's runs (each saves its text and ends as *interrupted*) and waits for
  them, at most CHATAPP_SHUTDOWN_GRACE seconds. Pages of other processes are told.
- A process that died without that leaves runs whose heartbeat stops. Every server process
  sweeps for them (`sweep()`, every third of CHATAPP_RUN_EXPIRY): they are marked *expired*
  and their pages are told at once, not only when someone reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django.conf import settings

from chatapp import runs, services
from chatapp.db import db
from chatapp.models import Message, Run
from chatapp.runs import events
from chatapp.web import fragments
from chatapp.web.hub import hub

logger = logging.getLogger(__name__)
_sweeper: asyncio.Task[None] | None = None
_watching_shutdown = False


def watch(tasks: set[asyncio.Task[None]]) -> None:
    """Called by every server-side start of a run or a socket: starts the sweep of this
    process, and hooks the runs of this process into the server's shutdown."""
    global _sweeper, _watching_shutdown
    loop = asyncio.get_running_loop()
    if _sweeper is None or _sweeper.done() or _sweeper.get_loop() is not loop:
        _sweeper = loop.create_task(sweep_forever())
    if not _watching_shutdown:
        _watching_shutdown = hook_into_shutdown(tasks)


def hook_into_shutdown(tasks: set[asyncio.Task[None]]) -> bool:
    """Under Daphne (Twisted on this asyncio loop): stop the runs before the reactor stops.
    Other servers have no such hook; their dead runs are found by the sweep."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not getattr(reactor, "running", False):
        return False
    from twisted.internet.defer import Deferred

    def before_shutdown() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(stop_runs(tasks)))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
    return True


async def stop_runs(tasks: set[asyncio.Task[None]]) -> None:
    """Interrupt every run of this process and wait, within the grace period, for each to
    save its text and tell its pages."""
    runs.shut_down()
    pending = list(tasks)
    logger.info("Shutting down: interrupting %d run(s)", len(pending))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=settings.CHATAPP_SHUTDOWN_GRACE)


async def sweep_forever() -> None:
    while True:
        await asyncio.sleep(settings.CHATAPP_RUN_EXPIRY / 3)
        try:
            await sweep()
        except Exception:  # the next sweep tries again; the process must not lose its sweeper
            logger.exception("Sweeping for dead runs failed")


async def sweep() -> list[services.Expired]:
    """Expire the runs whose process died, and tell their pages."""
    expired = await db(services.expire_stale_runs)()
    for run in expired:
        await tell_pages_it_ended(run.run_id, run.thread_id)
    return expired


async def tell_pages_it_ended(run_id: Any, thread_id: Any) -> None:
    """Send a run's end, as the database has it, to its thread's pages: the message it was
    writing (as far as it got) and its status."""
    html = await db(end_fragments)(run_id)
    if html:
        await hub().publish(thread_id, {"type": "chat.html", "html": html}, everywhere=True)


def end_fragments(run_id: Any) -> str:
    run = Run.objects.get(pk=run_id)
    unfinished = Message.objects.filter(
        run=run, role=Message.Role.ASSISTANT, status=Message.Status.INCOMPLETE
    ).select_related("assistant")
    parts = [
        fragments.event_fragments(
            events.MessageCompleted(
                str(run.pk),
                message.pk,
                message.content,
                "incomplete",
                message.assistant.name if message.assistant else "",
            )
        )
        for message in unfinished
    ]
    parts.append(fragments.event_fragments(events.RunFinished(str(run.pk), run.status, run.error)))
    return "".join(parts)
