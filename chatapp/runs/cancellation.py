"""Stopping a run that lives in this process at once, even while its model is silent, and
reading its model's stream with a clock.

The provider's stream is read by a child task into a queue; a cancel request (from any
thread) cancels that task, and the run loop sees `Cancelled` as the next item. Runs in
other processes see `Run.cancel_requested` at their next flush or heartbeat instead.

When the server shuts down, `shut_down()` marks the process as stopping: the runs it
interrupts end as *interrupted*, not as stopped by the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

_requested: set[str] = set()
_children: dict[str, set[str]] = {}  # a consulting run -> the runs it consults
_readers: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = {}
_stopping = False
END = object()  # the stream ended
QUIET = object()  # nothing arrived in the time given


class Cancelled(Exception):
    """The run was asked to stop while its model was streaming."""


def request(run_id: Any) -> None:
    """Ask the run to stop; safe to call from any thread."""
    key = str(run_id)
    _requested.add(key)
    if key in _readers:
        loop, reader = _readers[key]
        loop.call_soon_threadsafe(reader.cancel)
    for child in list(_children.get(key, ())):
        request(child)


def link(parent_id: Any, child_id: Any) -> None:
    """Stopping the parent stops the child too."""
    _children.setdefault(str(parent_id), set()).add(str(child_id))
    if requested(parent_id):
        request(child_id)


def requested(run_id: Any) -> bool:
    return str(run_id) in _requested


def forget(run_id: Any) -> None:
    _requested.discard(str(run_id))
    _children.pop(str(run_id), None)


def shut_down() -> None:
    """This process is stopping: runs interrupted from now on end as interrupted."""
    global _stopping
    _stopping = True


def shutting_down() -> bool:
    return _stopping


class StreamReader:
    """Reads a stream in a child task; `next(timeout)` returns its next item, QUIET when
    nothing came in `timeout` seconds, or END; it raises Cancelled as soon as the run is asked
    to stop, and whatever the stream raised."""

    def __init__(self, run_id: str, stream: AsyncIterator[Any]) -> None:
        self.run_id, self.stream = run_id, stream
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def __aenter__(self) -> StreamReader:
        self.task = asyncio.create_task(self._read())
        self.task.add_done_callback(self._on_done)
        _readers[self.run_id] = (asyncio.get_running_loop(), self.task)
        if requested(self.run_id):
            self.task.cancel()
        return self

    async def __aexit__(self, *exc: object) -> None:
        _readers.pop(self.run_id, None)
        self.task.remove_done_callback(self._on_done)
        self.task.cancel()

    async def _read(self) -> None:
        try:
            async for item in self.stream:
                self.queue.put_nowait(item)
            self.queue.put_nowait(END)
        except Exception as exc:  # handed to the run loop, which knows what to do with it
            self.queue.put_nowait(exc)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before it ever ran never enters _read(): tell the loop here.
        if task.cancelled():
            self.queue.put_nowait(Cancelled())

    async def next(self, within: float) -> Any:
        if self.queue.empty():  # a timer only when there is something to wait for
            try:
                item = await asyncio.wait_for(self.queue.get(), max(within, 0))
            except TimeoutError:
                return QUIET
        else:
            item = self.queue.get_nowait()
        if isinstance(item, Exception):
            raise item
        return item
