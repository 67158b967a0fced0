"""Frames to the pages of a thread: to this process's pages directly, and through the
channel layer to other processes only when they have pages of the thread.

Most pages are in the process that runs their answer (the socket that posts starts the run
in its own process), so nothing they are sent crosses Redis. With a cross-process layer
(Redis), each process has one *relay* channel on it: the relay joins the group of every
thread that has pages here and hands what it receives to them. A run sends to the group only
while another process listens (its relay is in the group; checked when the run starts and
at most once a second after, and at once when a process announces its first page of a
thread that has a run going). A page that joins meanwhile misses no text for good: it asks
for what it lacks from the offset it has (the resync; another process's run is asked through
that process's relay, named by every text frame), and its first frame shows the thread as
the database has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

PROCESS = uuid.uuid4().hex  # tells this process's own frames from others' on the layer
PRESENCE_SECONDS = 1.0  # how long "another process listens to this thread" is believed
PRESENCE = "chatapp.presence"  # every relay's group: "this process now listens to a thread"


class Page(Protocol):
    async def deliver(self, message: dict[str, Any]) -> None: ...


def group_name(thread_id: Any) -> str:
    return f"thread.{thread_id}"


class Hub:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.layer = get_channel_layer()
        self.cross_process = self.layer is not None and not isinstance(
            self.layer, InMemoryChannelLayer
        )
        self.pages: defaultdict[str, set[Page]] = defaultdict(set)
        self.users: defaultdict[Any, set[Page]] = defaultdict(set)  # user id -> their pages
        self.resenders: dict[str, Callable[[int, int], Awaitable[None]]] = {}
        self.listening: dict[str, bool] = {}  # thread with runs here -> another process listens
        self.broadcasts: defaultdict[str, int] = defaultdict(int)  # thread -> runs here
        self.presence_task: asyncio.Task[None] | None = None
        self.relay = ""
        self.relay_task: asyncio.Task[None] | None = None

    # --- pages ------------------------------------------------------------------------------

    async def join(self, thread_id: Any, page: Page, user_id: Any = None) -> bool:
        """Whether the page is this process's first of the thread: then this process now
        listens to the thread's group, and a run of another process that already broadcasts
        to it must be told (`announce`); a run that starts later finds the relay there."""
        key = str(thread_id)
        first = not self.pages[key]
        self.pages[key].add(page)
        if user_id is not None:
            self.users[user_id].add(page)
        if first and self.cross_process:
            await self.layer.group_add(group_name(key), await self.relay_channel())
        return first

    async def announce(self, thread_id: Any) -> None:
        """Tell the other processes that this one listens to the thread now: one of them may
        run an answer in it (every relay hears this)."""
        if self.cross_process:
            message = {"type": "presence", "thread": str(thread_id), "origin": PROCESS}
            await self.layer.group_send(PRESENCE, message)

    def pages_of(self, user_id: Any) -> int:
        """How many pages the user has open in this process."""
        return len(self.users.get(user_id, ()))

    async def leave(self, thread_id: Any, page: Page, user_id: Any = None) -> None:
        key = str(thread_id)
        self.pages[key].discard(page)
        if user_id is not None and user_id in self.users:
            self.users[user_id].discard(page)
            if not self.users[user_id]:
                del self.users[user_id]
        if not self.pages[key]:
            del self.pages[key]
            if self.cross_process and self.relay:
                await self.layer.group_discard(group_name(key), self.relay)

    async def deliver(self, thread_id: str, message: dict[str, Any]) -> None:
        for page in list(self.pages.get(thread_id, ())):
            try:
                await page.deliver(message)
            except Exception:  # one broken page must not keep the others from their frames
                logger.exception("Delivering to a page of thread %s failed", thread_id)

    # --- publishing -------------------------------------------------------------------------

    async def publish(
        self, thread_id: Any, message: dict[str, Any], *, everywhere: bool = False
    ) -> None:
        """To this process's pages now, and to other processes' while one listens (or
        `everywhere`: for the rare frame about a run that no process here broadcasts)."""
        key = str(thread_id)
        await self.deliver(key, message)
        if self.cross_process and (everywhere or self.listening.get(key, False)):
            await self.layer.group_send(
                group_name(key), {**message, "thread": key, "origin": PROCESS}
            )

    # --- who listens elsewhere ----------------------------------------------------------------
    # Publishing must not wait for Redis to learn who listens: the threads with runs here are
    # checked when a run starts and then by one background loop, once a second, all at once.

    async def broadcasting(self, thread_id: Any) -> None:
        """A run of this process starts broadcasting to the thread."""
        key = str(thread_id)
        self.broadcasts[key] += 1
        if self.cross_process:
            self.listening[key] = await self.others_listen(key)
            if self.presence_task is None or self.presence_task.done():
                self.presence_task = self.loop.create_task(self.watch_presence())

    def done_broadcasting(self, thread_id: Any) -> None:
        key = str(thread_id)
        self.broadcasts[key] -= 1
        if self.broadcasts[key] <= 0:
            del self.broadcasts[key]
            self.listening.pop(key, None)

    async def watch_presence(self) -> None:
        while self.broadcasts:
            await asyncio.sleep(PRESENCE_SECONDS)
            for key in list(self.broadcasts):
                try:
                    self.listening[key] = await self.others_listen(key)
                except Exception:  # Redis away for a moment: keep what we knew
                    logger.exception("Checking who listens to thread %s failed", key)

    async def others_listen(self, thread_id: str) -> bool:
        members = await group_members(self.layer, group_name(thread_id))
        return members is None or any(member != self.relay for member in members)

    # --- what a user's pages must hear --------------------------------------------------------

    async def tell_user(self, user_id: Any, message: dict[str, Any]) -> None:
        """To every page of the user, here and (through the relays) in other processes."""
        for page in list(self.users.get(user_id, ())):
            try:
                await page.deliver(message)
            except Exception:
                logger.exception("Telling a page of user %s failed", user_id)
        if self.cross_process:
            await self.layer.group_send(
                PRESENCE, {"type": "user", "user": user_id, "message": message, "origin": PROCESS}
            )

    # --- the text a page lacks --------------------------------------------------------------

    def serve_resyncs(self, thread_id: Any, resend: Callable[[int, int], Awaitable[None]]) -> None:
        """A run of this process answers resync requests for its thread's text."""
        self.resenders[str(thread_id)] = resend

    def stop_serving(self, thread_id: Any) -> None:
        self.resenders.pop(str(thread_id), None)

    async def resync(self, thread_id: Any, message_id: int, offset: int, broadcaster: str) -> None:
        """A page lacks text from `offset`: ask the run, here or through the relay of its
        process (`broadcaster`, which every text frame names)."""
        key = str(thread_id)
        resend = self.resenders.get(key)
        if resend is not None:
            await resend(message_id, offset)
        elif broadcaster and self.cross_process:
            request = {"type": "resync", "thread": key, "message_id": message_id, "offset": offset}
            await self.layer.send(broadcaster, request)

    # --- the relay ----------------------------------------------------------------------------

    async def relay_channel(self) -> str:
        if not self.relay:
            self.relay = await self.layer.new_channel()
            await self.layer.group_add(PRESENCE, self.relay)
            self.relay_task = self.loop.create_task(self.relay_frames())
        return self.relay

    async def relay_frames(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.relay)
            except Exception:  # Redis restarting, say: the relay must outlive it
                logger.exception("The relay of this process could not read from the layer")
                await asyncio.sleep(1)
                continue
            if message.get("origin") == PROCESS:
                continue
            if message["type"] == "user":  # a user's pages everywhere must hear this
                for page in list(self.users.get(message["user"], ())):
                    with contextlib.suppress(Exception):
                        await page.deliver(message["message"])
            elif message["type"] == "presence":  # a page elsewhere: send there from now on
                if message["thread"] in self.broadcasts:
                    self.listening[message["thread"]] = True
            elif message["type"] == "resync":  # a page elsewhere lacks text of a run here
                await self.answer_resync(message)
            elif "thread" in message:
                await self.deliver(message["thread"], message)

    async def answer_resync(self, request: dict[str, Any]) -> None:
        resend = self.resenders.get(request.get("thread", ""))
        message_id, offset = request.get("message_id"), request.get("offset")
        if resend is not None and isinstance(message_id, int) and isinstance(offset, int):
            try:
                await resend(message_id, offset)
            except Exception:  # the relay goes on for every other thread
                logger.exception("Resending text of thread %s failed", request.get("thread"))


async def group_members(layer: Any, group: str) -> list[str] | None:
    """Who is in a layer group: None when the layer cannot tell (then assume someone is).
    channels_redis keeps a group as a sorted set of channel names; it has no public call to
    read it, so this reads that set the way channels_redis's own group_send does."""
    key = getattr(layer, "_group_key", None)
    if key is None:
        return None
    connection = layer.connection(layer.consistent_hash(group))
    return [member.decode() for member in await connection.zrange(key(group), 0, -1)]


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This process's hub (one per event loop: tests run a loop each)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        for stale in [other for other in _hubs if other.is_closed()]:
            found = _hubs.pop(stale)
            if found.relay_task is not None:
                with contextlib.suppress(Exception):
                    found.relay_task.cancel()
        _hubs[loop] = Hub()
    return _hubs[loop]
