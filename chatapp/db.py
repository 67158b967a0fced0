"""Database work from async code, on a small pool of threads.

Channels' `database_sync_to_async` runs every call on one shared thread, so with many runs
active all their database work queues behind each other (measured: 100 answers starting
together waited seconds for their first word). The calls made through `db()` are short and
independent and keep no state in their thread between calls, so they run on a pool of
CHATAPP_DB_THREADS threads instead, each with its own persistent connection; like Channels'
helper, each call closes connections that are too old or broken, before and after.

With CONN_HEALTH_CHECKS, Django also pings a connection (`SELECT 1`) before the first query
of every such call: on PostgreSQL ~14 of the ~70 statements of an answer. A connection used
moments ago is the one least likely to be dead, so only one idle for PING_AFTER_IDLE
seconds is pinged. If one dies meanwhile (the database restarted), the call using it fails,
Django closes it after that call (a connection that had an error is checked), and the
thread's next call connects again.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from asgiref.sync import SyncToAsync
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import close_old_connections, connections

PING_AFTER_IDLE = 5.0  # seconds


@cache
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.CHATAPP_DB_THREADS, thread_name_prefix="chatapp-db")


# A forked process (a live test server, a pre-forking server) has none of its parent's
# threads: it must not wait on the parent's pool.
os.register_at_fork(after_in_child=executor.cache_clear)


class OnDatabaseThreads(DatabaseSyncToAsync):
    """Finds the pool when called, not when made: a method decorated at import must not
    keep the pool of the process that imported it (a fork has other threads)."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._executor = executor()
        return await super().__call__(*args, **kwargs)

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        """In the database thread: Channels' cleanup before and after the call, and no ping
        for a connection this thread used moments ago."""
        close_old_connections()  # which asks for a ping before the next query
        now = time.monotonic()
        for connection in connections.all(initialized_only=True):
            if now - getattr(connection, "chatapp_used_at", -math.inf) < PING_AFTER_IDLE:
                connection.health_check_done = True
        try:
            return SyncToAsync.thread_handler(self, loop, *args, **kwargs)
        finally:
            close_old_connections()
            now = time.monotonic()
            for connection in connections.all(initialized_only=True):
                connection.chatapp_used_at = now


def db[**P, R](function: Callable[P, R]) -> Callable[P, Any]:
    """`await db(function)(...)`: `function` on the database threads."""
    return OnDatabaseThreads(function, thread_sensitive=False, executor=executor())


def close_all() -> None:
    """Close the connections of every database thread (tests, before dropping a database):
    one job per thread, held at a barrier so that each lands on a thread of its own."""
    workers = settings.CHATAPP_DB_THREADS
    barrier = threading.Barrier(workers)

    def close() -> None:
        barrier.wait(timeout=10)
        connections.close_all()

    for job in [executor().submit(close) for _ in range(workers)]:
        job.result(timeout=20)
