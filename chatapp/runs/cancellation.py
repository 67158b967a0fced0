"""Stopping a run that lives in this process, at once, even while its model is silent.

The provider's stream is read by a child task; a cancel request (from any thread) cancels
that task, and the run loop sees `Cancelled` as the next item. Runs in other processes see
`Run.cancel_requested` at their next flush instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

_requested: set[str] = set()
_children: dict[str, set[str]] = {}  # a consulting run -> the runs it consults
_readers: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = {}
_END = object()


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


async def interruptible(run_id: str, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Yield the stream's items; raise Cancelled as soon as the run is asked to stop."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def read() -> None:
        try:
            async for item in stream:
                queue.put_nowait(item)
            queue.put_nowait(_END)
        except Exception as exc:  # handed to the run loop, which knows what to do with it
            queue.put_nowait(exc)

    def on_done(task: asyncio.Task[None]) -> None:
        # A task cancelled before it ever ran never enters read(): tell the loop here.
        if task.cancelled():
            queue.put_nowait(Cancelled())

    reader = asyncio.create_task(read())
    reader.add_done_callback(on_done)
    _readers[run_id] = (asyncio.get_running_loop(), reader)
    try:
        if requested(run_id):
            reader.cancel()
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        _readers.pop(run_id, None)
        reader.remove_done_callback(on_done)
        reader.cancel()
