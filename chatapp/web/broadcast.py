"""Runs as background tasks that broadcast to the thread's channel-layer group.

A run is not tied to the socket that asked for it: closing the tab does not stop it. Every
tab of the thread, in any process, is in the group and sees the same frames:

- `chat.html`: a rendered fragment (a new message, a tool step, a handoff, the run status);
- `chat.text`: a batch of text deltas with the message id and the offset of its first
  character. Deltas are coalesced for ~50 ms: the channel layer drops messages past its
  capacity, so one frame per token would lose text under load.

A consumer that joined mid-message and finds a gap asks the broadcaster (whose channel name
rides on every text frame) to resend from an offset: the final text always comes from the
database, and the live text never skips a character.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chatapp.models import Thread
from chatapp.runs import events, execute
from chatapp.web import fragments, lifecycle

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05
_tasks: set[asyncio.Task[None]] = set()  # strong references: a bare task may be collected


def group_name(thread_id: Any) -> str:
    return f"thread.{thread_id}"


def start(run_id: Any, thread_id: Any) -> asyncio.Task[None]:
    """Run `run_id` in the background of this process, broadcasting as it goes."""
    keep_watch()
    task = asyncio.get_running_loop().create_task(Broadcaster(run_id, thread_id).run())
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


def innermost(event: events.RunEvent) -> events.RunEvent:
    while isinstance(event, events.Nested):
        event = event.event
    return event


class Broadcaster:
    def __init__(self, run_id: Any, thread_id: Any) -> None:
        self.run_id, self.thread_id = str(run_id), thread_id
        self.group = group_name(thread_id)
        self.layer = get_channel_layer()
        self.texts: dict[int, str] = {}  # message id -> everything streamed so far
        self.sent: dict[int, int] = {}  # message id -> characters already broadcast
        self.channel = ""

    async def run(self) -> None:
        self.channel = await self.layer.new_channel()
        listener = asyncio.create_task(self.answer_resyncs())
        flusher = asyncio.create_task(self.flush_every(COALESCE_SECONDS))
        run_events = execute(self.run_id)
        try:
            thread = await Thread.objects.select_related("current_assistant").aget(
                pk=self.thread_id
            )
            async for event in run_events:
                if isinstance(delta := innermost(event), events.TextDelta):
                    # Message ids are unique across threads: a consulted specialist's text
                    # streams into its own message inside the consultation's block.
                    self.texts[delta.message_id] = self.texts.get(delta.message_id, "") + delta.text
                    continue
                await self.flush()
                await self.send_html(event, thread)
        except asyncio.CancelledError:  # the server is shutting down: the run has saved itself
            await run_events.aclose()
            await self.flush()
            await lifecycle.tell_pages_it_ended(self.run_id, self.thread_id)
            raise
        except Exception:
            logger.exception("Broadcasting run %s failed", self.run_id)
        finally:
            await run_events.aclose()  # never leave a run half-consumed
            flusher.cancel()
            listener.cancel()
            for task in (flusher, listener):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def send_html(self, event: events.RunEvent, thread: Thread) -> None:
        """One event's fragment. A page that misses one is put right on its next connect;
        the run itself must go on, so a rendering error is logged, not raised."""
        try:
            html = await database_sync_to_async(fragments.event_fragments)(event, thread)
        except Exception:
            logger.exception("Rendering %s of run %s failed", event.type, self.run_id)
            return
        if html:
            await self.layer.group_send(self.group, {"type": "chat.html", "html": html})

    async def flush_every(self, seconds: float) -> None:
        while True:
            started = time.monotonic()
            await self.flush()
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))

    async def flush(self) -> None:
        for message_id, text in list(self.texts.items()):
            offset = self.sent.get(message_id, 0)
            if len(text) > offset:
                self.sent[message_id] = len(text)
                await self.layer.group_send(self.group, self.text_frame(message_id, offset))

    def text_frame(self, message_id: int, offset: int) -> dict[str, Any]:
        return {
            "type": "chat.text",
            "message_id": message_id,
            "offset": offset,
            "text": self.texts.get(message_id, "")[offset:],
            "broadcaster": self.channel,
        }

    async def answer_resyncs(self) -> None:
        while True:
            request = await self.layer.receive(self.channel)
            message_id, offset = request.get("message_id"), request.get("offset")
            if message_id in self.texts and isinstance(offset, int) and offset >= 0:
                await self.layer.send(request["reply_to"], self.text_frame(message_id, offset))
