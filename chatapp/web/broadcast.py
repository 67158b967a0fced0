"""Runs as background tasks that send what happens to the pages of their thread (hub.py):
to the pages in this process directly, to those in other processes over the channel layer.

A run is not tied to the socket that asked for it: closing the tab does not stop it. Every
tab of the thread, in any process, sees the same frames:

- `chat.html`: a rendered fragment (a new message, a tool step, a handoff, the run status);
- `chat.text`: a batch of text deltas with the message id and the offset of its first
  character. The first text of a message goes at once; the rest is gathered for ~30 ms by
  one clock for all runs of the process, so pages get a frame per batch, not per token.

A page that joined mid-message and finds a gap asks for the text from the offset it has (the
resync): the final text always comes from the database, and the live text never skips a
character.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from chatapp.db import db
from chatapp.models import Thread
from chatapp.runs import events, execute
from chatapp.web import fragments, lifecycle
from chatapp.web.hub import group_name, hub

logger = logging.getLogger(__name__)

# Longer batches send fewer frames, but every word waits for its batch: at 300 answers on one
# core, 30 ms lagged less than 50 and cost no more CPU (README, Performance).
COALESCE_SECONDS = 0.03
_tasks: set[asyncio.Task[None]] = set()  # strong references: a bare task may be collected
_pending: set[Broadcaster] = set()  # runs with text gathered since the last tick
_clock: asyncio.Task[None] | None = None

__all__ = ["Broadcaster", "group_name", "keep_watch", "start", "wait_for_all"]


def start(run_id: Any, thread_id: Any, *, question_shown: bool = False) -> asyncio.Task[None]:
    """Run `run_id` in the background of this process, broadcasting as it goes.
    `question_shown`: the pages show the message it answers already (a retry, an edit)."""
    keep_watch()
    broadcaster = Broadcaster(run_id, thread_id, question_shown=question_shown)
    task = asyncio.get_running_loop().create_task(broadcaster.run())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def keep_watch() -> None:
    """Start this process's sweep for dead runs and its shutdown hook (lifecycle.py), once."""
    lifecycle.watch(_tasks)


async def wait_for_all() -> None:
    """For tests and shutdown: wait until every background run of this process is done."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
        # Gathering finished tasks does not yield to the loop: let their done callbacks
        # take them out of the set.
        await asyncio.sleep(0)


def innermost(event: events.RunEvent) -> events.RunEvent:
    while isinstance(event, events.Nested):
        event = event.event
    return event


async def tick() -> None:
    """One clock for every run of the process: each gathered batch leaves every ~30 ms."""
    while _pending:
        await asyncio.sleep(COALESCE_SECONDS)
        for broadcaster in list(_pending):
            _pending.discard(broadcaster)
            await broadcaster.flush()


def wake_the_clock() -> None:
    global _clock
    if _clock is None or _clock.done() or _clock.get_loop() is not asyncio.get_running_loop():
        _clock = asyncio.get_running_loop().create_task(tick())


class Broadcaster:
    def __init__(self, run_id: Any, thread_id: Any, *, question_shown: bool = False) -> None:
        self.run_id, self.thread_id = str(run_id), str(thread_id)
        self.question_shown = question_shown
        self.hub = hub()
        self.texts: dict[int, str] = {}  # message id -> everything streamed so far
        self.sent: dict[int, int] = {}  # message id -> characters already sent
        self.channel = ""  # where other processes ask for text (a resync): this one's relay
        self.thread: Thread | None = None  # read when a fragment first needs it

    async def run(self) -> None:
        self.hub.serve_resyncs(self.thread_id, self.resend)
        await self.hub.broadcasting(self.thread_id)
        if self.hub.cross_process:
            self.channel = await self.hub.relay_channel()
        run_events = execute(self.run_id)
        try:
            async for event in run_events:
                if isinstance(delta := innermost(event), events.TextDelta):
                    # Message ids are unique across threads: a consulted specialist's text
                    # streams into its own message inside the consultation's block.
                    first = delta.message_id not in self.texts
                    self.texts[delta.message_id] = self.texts.get(delta.message_id, "") + delta.text
                    if first:  # the first words are not held back by the batching
                        await self.flush()
                    else:
                        _pending.add(self)
                        wake_the_clock()
                    continue
                await self.flush()
                if isinstance(event, events.RunStarted) and self.question_shown:
                    event = dataclasses.replace(event, question_id=0, question="")
                await self.send_html(event)
        except asyncio.CancelledError:  # the server is shutting down: the run has saved itself
            await run_events.aclose()
            await self.flush()
            await lifecycle.tell_pages_it_ended(self.run_id, self.thread_id)
            raise
        except Exception:
            logger.exception("Broadcasting run %s failed", self.run_id)
        finally:
            await run_events.aclose()  # never leave a run half-consumed
            _pending.discard(self)
            self.hub.stop_serving(self.thread_id)
            self.hub.done_broadcasting(self.thread_id)

    async def send_html(self, event: events.RunEvent) -> None:
        """One event's fragment. A page that misses one is put right on its next connect;
        the run itself must go on, so a rendering error is logged, not raised."""
        try:
            if fragments.needs_database(event):
                html = await db(self.render_with_thread)(event)
            else:  # no queue to wait in: the text that follows needs this fragment first
                html = fragments.event_fragments(event)
        except Exception:
            logger.exception("Rendering %s of run %s failed", event.type, self.run_id)
            return
        if html:
            message = {"type": "chat.html", "html": html}
            await self.hub.publish(self.thread_id, message)

    def render_with_thread(self, event: events.RunEvent) -> str:
        """A fragment that shows the thread's side panels: the thread is read when the first
        such event comes (most runs have none), and kept (each such fragment refreshes it)."""
        if self.thread is None:
            self.thread = Thread.objects.select_related("current_assistant").get(pk=self.thread_id)
        return fragments.event_fragments(event, self.thread)

    async def flush(self) -> None:
        for message_id, text in list(self.texts.items()):
            offset = self.sent.get(message_id, 0)
            if len(text) > offset:
                self.sent[message_id] = len(text)
                frame = self.text_frame(message_id, offset)
                await self.hub.publish(self.thread_id, frame)

    def text_frame(self, message_id: int, offset: int) -> dict[str, Any]:
        return {
            "type": "chat.text",
            "message_id": message_id,
            "offset": offset,
            "text": self.texts.get(message_id, "")[offset:],
            "broadcaster": self.channel,
        }

    async def resend(self, message_id: int, offset: int) -> None:
        """A page lacks this message's text from `offset`: every page gets it again (each
        drops what it already shows)."""
        if message_id in self.texts and offset >= 0:
            frame = self.text_frame(message_id, offset)
            await self.hub.publish(self.thread_id, frame)
