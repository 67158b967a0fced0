"""Stopping a run that lives in this process at once, even while its model is silent, and
reading its model's stream with a clock (StreamWatch). Runs in other processes see
`Run.cancel_requested` at their next heartbeat instead.

When the server shuts down, `shut_down()` marks the process as stopping: the runs it
interrupts end as *interrupted*, not as stopped by the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

_requested: set[str] = set()
_children: dict[str, set[str]] = {}  # a consulting run -> the runs it consults
_watches: dict[str, StreamWatch] = {}  # the runs of this process reading their model
_stopping = False


class Cancelled(Exception):
    """The run was asked to stop while its model was streaming."""


def request(run_id: Any) -> None:
    """Ask the run to stop; safe to call from any thread."""
    key = str(run_id)
    _requested.add(key)
    if (watch := _watches.get(key)) is not None:
        watch.loop.call_soon_threadsafe(watch.interrupt, Cancelled())
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


class StreamWatch:
    """Watches a run while it reads its model's stream, in the task that reads it: a stop
    request (from any thread) or a time limit interrupts the read at once, even while the
    model is silent, and `tick` runs on the clock's schedule (to save the partial text).

    The read is interrupted the way `asyncio.timeout` does it: by cancelling the task and,
    on the way out, taking the cancellation back and raising why (`Cancelled`, or the `Stop`
    of a time limit). Nothing is done per token: one timer per run, re-armed when due.
    """

    def __init__(self, run_id: str, clock: Any, tick: Callable[[], None]) -> None:
        self.run_id, self.clock, self.tick = run_id, clock, tick
        self.why: Exception | None = None
        self.reading = False  # awaiting the stream: the only time the task may be cancelled

    async def __aenter__(self) -> StreamWatch:
        self.task = asyncio.current_task()
        assert self.task is not None
        self.loop = asyncio.get_running_loop()
        self.cancelling = self.task.cancelling()
        _watches[self.run_id] = self
        if requested(self.run_id):
            raise Cancelled()
        self.timer = self.loop.call_later(max(self.clock.wait(), 0), self.check)
        return self

    async def read(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The stream's items. The task is interrupted only while it waits for the next one:
        while it handles an item (its consumers run in this task too), a stop or a limit is
        raised when it comes back for more."""
        items = aiter(stream)
        while True:
            if self.why is not None:
                raise self.why
            self.reading = True
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            finally:
                self.reading = False
            yield item

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.timer.cancel()
        _watches.pop(self.run_id, None)
        if (
            self.why is not None
            and kind is asyncio.CancelledError
            and self.task.uncancel() <= self.cancelling
        ):
            raise self.why

    def check(self) -> None:
        """The clock's timer: a limit passed interrupts; otherwise tick, and wait again."""
        try:
            self.clock.check()
        except Exception as limit:  # a Stop: the model was silent, or slow, too long
            self.interrupt(limit)
            return
        if self.clock.flush_due():
            self.tick()
        self.timer = self.loop.call_later(max(self.clock.wait(), 0), self.check)

    def interrupt(self, why: Exception) -> None:
        """On the loop's thread: end the read with `why`."""
        if self.why is None:
            self.why = why
            if self.reading:
                self.task.cancel()
