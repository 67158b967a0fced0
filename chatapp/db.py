"""Database work from async code, on a small pool of threads.

Channels' `database_sync_to_async` runs every call on one shared thread, so with many runs
active all their database work queues behind each other (measured: 100 answers starting
together waited seconds for their first word). The calls made through `db()` are short and
independent and keep no state in their thread between calls, so they run on a pool of
CHATAPP_DB_THREADS threads instead, each with its own persistent connection; like Channels'
helper, each call closes connections that are too old or broken, before and after.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections


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
