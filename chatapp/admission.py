"""Answers start a few at a time.

Everything an answer does before the model's first word is our own work: the user's message
stored, the run begun, its turn read, its fragments rendered, each a trip to the database
threads (`chatapp/db.py`). Those threads take work first in, first out; so when hundreds of
answers start at once, every trip of every start waits behind the same trip of all the
others, the starts advance in lockstep, and they all reach the model together at the end,
while the answers already streaming wait behind the whole crowd. Admitting a few starts at a
time (CHATAPP_STARTS_AT_ONCE) lets each one run through: the first answers begin at once,
the others in the order they came, and what is streaming keeps its pace.

A gate is held only for that work of our own: a run lets go of it before it calls the model
or runs a tool, so a slow model or a long tool never holds up other answers' starts.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from django.conf import settings


class Gate:
    """At most CHATAPP_STARTS_AT_ONCE holders at once, the others in the order they came.
    One semaphore per event loop, sized when that loop first comes: an asyncio primitive
    belongs to the loop that first waits on it, and a process may run several loops one
    after another (tests do, each with its own)."""

    def __init__(self) -> None:
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if (semaphore := self._semaphores.get(loop)) is None:
            semaphore = asyncio.Semaphore(settings.CHATAPP_STARTS_AT_ONCE)
            self._semaphores[loop] = semaphore
        return semaphore

    async def enter(self) -> Ticket:
        semaphore = self._semaphore()
        await semaphore.acquire()
        return Ticket(semaphore)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[Ticket]:
        ticket = await self.enter()
        try:
            yield ticket
        finally:
            ticket.leave()


class Ticket:
    """A place at a gate, given back once, however many times `leave` is called."""

    def __init__(self, semaphore: asyncio.Semaphore | None = None) -> None:
        self._semaphore = semaphore

    def leave(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


# Two gates, so that the two halves of a start overlap: a page's message being stored, and a
# run being begun up to its first model call.
messages = Gate()
runs = Gate()
