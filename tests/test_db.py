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


ON_POSTGRESQL = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="only a database server closes connections; the PostgreSQL run of CI checks it",
)


@ON_POSTGRESQL
async def test_an_idle_connection_the_database_closed_is_replaced_before_the_call(
    monkeypatch, settings
):
    monkeypatch.setattr(chatapp.db, "PING_AFTER_IDLE", 0.2)
    await on_every_thread(read, settings)
    assert await close_them_from_the_server() >= settings.CHATAPP_DB_THREADS
    await asyncio.sleep(0.3)  # idle now
    assert all(await on_every_thread(read, settings))


@ON_POSTGRESQL
async def test_a_connection_closed_moments_after_its_use_fails_one_call_then_reconnects(
    monkeypatch, settings
):
    """The price of not pinging a connection used moments ago."""
    monkeypatch.setattr(chatapp.db, "PING_AFTER_IDLE", 60)
    await on_every_thread(read, settings)
    assert await close_them_from_the_server() >= settings.CHATAPP_DB_THREADS
    failed = await on_every_thread(read, settings, return_exceptions=True)
    assert all(isinstance(outcome, OperationalError) for outcome in failed)
    assert all(await on_every_thread(read, settings))
