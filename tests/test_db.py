"""The database threads (chatapp/db.py): a connection used moments ago is not pinged before
its next call; an idle one is, and one the database closed meanwhile is replaced before the
call needs it."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, connections

import chatapp.db
from chatapp.db import db

pytestmark = pytest.mark.django_db(transaction=True)


def read() -> bool:
    return not get_user_model().objects.exists()


@pytest.fixture
def pings(monkeypatch) -> list[None]:
    """Every health check (Django's `SELECT 1` on PostgreSQL) of any connection."""
    counted: list[None] = []
    wrapper = type(connections["default"])
    original = wrapper.is_usable

    def is_usable(self):
        counted.append(None)
        return original(self)

    monkeypatch.setattr(wrapper, "is_usable", is_usable)
    return counted


async def test_a_connection_used_moments_ago_is_not_pinged(pings, settings):
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    for _ in range(20):
        assert await db(read)()
    # at most once per thread, for a connection left idle by an earlier test
    assert len(pings) <= settings.CHATAPP_DB_THREADS


async def on_every_thread(function, settings, **gather) -> list:
    """`function` once on each database thread: each call holds its thread at a barrier
    until every thread has one."""
    barrier = threading.Barrier(settings.CHATAPP_DB_THREADS)

    def held():
        barrier.wait(timeout=10)
        return function()

    calls = (db(held)() for _ in range(settings.CHATAPP_DB_THREADS))
    return await asyncio.gather(*calls, **gather)


@sync_to_async
def close_them_from_the_server() -> int:
    """What a database restart does to the connections of the database threads."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


async def test_an_idle_connection_is_pinged_before_its_call(pings, monkeypatch, settings):
    monkeypatch.setattr(chatapp.db, "PING_AFTER_IDLE", 0)
    await on_every_thread(read, settings)
    pings.clear()
    for _ in range(5):
        assert await db(read)()
    assert len(pings) == 5


@pytest.mark.parametrize(
    ("idle_after", "first_calls_fail"),
    [
        (0.2, False),  # idle when the next call comes: replaced before the call
        (60, True),  # used moments ago: the price of no ping, one failed call per thread
    ],
)
async def test_a_connection_the_database_closed_is_replaced(
    monkeypatch, settings, idle_after, first_calls_fail
):
    """PostgreSQL: every thread's connection closed by the server, as a restart does. SQLite
    has no server to close one, and Django's check of a SQLite connection always passes:
    both CI runs check their own."""
    monkeypatch.setattr(chatapp.db, "PING_AFTER_IDLE", idle_after)
    await on_every_thread(read, settings)
    if connection.vendor != "postgresql":
        assert connection.vendor == "sqlite"  # the only other backend chatapp runs on
        assert all(await on_every_thread(lambda: connections["default"].is_usable(), settings))
        return
    assert await close_them_from_the_server() >= settings.CHATAPP_DB_THREADS
    await asyncio.sleep(0.3)
    if first_calls_fail:
        failed = await on_every_thread(read, settings, return_exceptions=True)
        assert all(isinstance(outcome, OperationalError) for outcome in failed)
    assert all(await on_every_thread(read, settings))
