"""Several server processes on Redis, as `manage.py serve --processes 2` runs them: a page on
one process sees, live, a run started from a page on the other — after sitting idle longer
than redis-py's default read timeout (which used to kill the receiving side) — and a page
that joins mid-answer gets the text it missed from the process that runs the answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from chatapp import services
from chatapp.models import Message
from tests.factories import assistant
from tests.processes import ROOT, environment
from tests.web.test_consumer import session_cookie
from tests.web.test_lifecycle import streamed, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)


def redis_url() -> str:
    """This session's Redis, or the machine's; a test of processes needs one (.ci/run starts
    it when it is not running)."""
    url = settings.REDIS_URL or "redis://127.0.0.1:6379/8"
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Several processes need Redis, and {url} does not answer: {exc}")
    return url


def two_free_ports() -> int:
    """A port and the next one, both free, below the ephemeral range: a port the kernel
    hands out for outgoing connections (to PostgreSQL, Redis) may be taken at any moment."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(20_000, low - 2)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port


def serve(port: int, **extra: str) -> subprocess.Popen[str]:
    env = environment(
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,
        REDIS_URL=redis_url(),
        OFFLINE_MODEL_DELAY="0.1",
        **extra,
    )
    command = ["manage.py", "serve", "--processes", "2", "--port", str(port)]
    return subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.asynccontextmanager
async def two_processes(user, **extra: str) -> AsyncIterator[tuple[Any, int, Callable]]:
    """`manage.py serve --processes 2` on `port` and `port + 1`, a thread of the offline
    model's, and `page(port)`: the user's page of that thread on one process. The server
    must stop cleanly afterwards."""
    bot = await sync_to_async(assistant)("bot", name="Bot", provider="offline")
    thread = await sync_to_async(services.start_thread)(bot, user=user)
    port = two_free_ports()
    server = await asyncio.to_thread(serve, port, **extra)
    try:
        await wait_for_port(port, server)
        await wait_for_port(port + 1, server)
        cookie = (await session_cookie(user)).decode()

        def page(on: int) -> websockets.connect:
            return websockets.connect(
                f"ws://127.0.0.1:{on}/ws/threads/{thread.pk}/",
                additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{on}"},
            )

        yield thread, port, page
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
    assert server.returncode == 0, server.stderr.read()


async def test_a_page_on_one_process_sees_a_run_started_on_the_other(user):
    async with two_processes(user) as (_, port, page), page(port + 1) as watcher:
        await watcher.recv()
        await asyncio.sleep(11)  # idle past redis-py's 5 s read timeout
        async with page(port) as poster:
            await poster.recv()
            await poster.send(json.dumps({"type": "message", "text": "hi", "client_id": "c"}))
            seen, live = "", False
            async with asyncio.timeout(30):
                while 'data-running="false"' not in (frame := await watcher.recv()):
                    seen += streamed(frame)
                    live = live or bool(seen)  # text before the run's end: live
            assert live and "offline model" in seen.lower()


async def test_a_page_joining_mid_answer_on_the_other_process_gets_what_it_missed(user):
    """The page joins after the first words went out, and no partial text is saved yet (a
    long flush interval): it knows none of the answer, so the first live batch it gets
    leaves a gap. It asks the run's process for the text from its offset (the resync), and
    shows the answer live from its first word."""
    async with two_processes(user, CHATAPP_FLUSH_INTERVAL="600") as (thread, port, page):
        async with page(port) as poster, asyncio.timeout(30):
            await poster.recv()
            await poster.send(json.dumps({"type": "message", "text": "hi", "client_id": "c"}))
            while not streamed(await poster.recv()):  # the first words are out
                pass
            async with page(port + 1) as late:
                # Its state (live text that comes before it is shown by it, or asked for again)
                while "data-running" not in (joined := await late.recv()):
                    pass
                assert 'data-running="true"' in joined  # mid-answer
                live = ""
                while 'data-running="false"' not in (frame := await late.recv()):
                    live += streamed(frame)
        answer = await Message.objects.filter(thread=thread, role="assistant").alast()
        assert answer is not None and "offline model" in answer.content.lower()
        assert live and answer.content.startswith(live)  # from its first word, no gap


async def test_a_quiet_channel_on_redis_is_not_an_error():
    """channels_redis blocks up to 5 s reading a quiet channel; redis-py 8 gave up any read
    after 5 s, so the receiver raised (channels_redis#422). Our layer's configuration waits."""
    from channels_redis.core import RedisChannelLayer

    from chatapp.settings import redis_layer

    layer = RedisChannelLayer(**redis_layer(redis_url())["CONFIG"])
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(11)
    assert not waiting.done()  # still waiting, not failed
    await layer.send(channel, {"type": "hello"})
    assert (await asyncio.wait_for(waiting, 5))["type"] == "hello"
    await layer.flush()


async def test_a_pause_outlives_a_restart_and_any_process_resumes_it(site_editor, user):
    """Paused on one process; the server restarts; Approve on the other process runs the
    call there and the answer goes on."""
    from assistants_registry.site_editor.models import Page
    from chatapp.models import Run

    thread = await sync_to_async(services.start_thread)("welcome", user=user)
    cookie = (await session_cookie(user)).decode()
    port = two_free_ports()

    def page(on: int) -> websockets.connect:
        return websockets.connect(
            f"ws://127.0.0.1:{on}/ws/threads/{thread.pk}/",
            additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{on}"},
        )

    async def until(socket, needle: str) -> str:
        async with asyncio.timeout(30):
            while needle not in (frame := await socket.recv()):
                pass
        return frame

    async def say(socket, text: str, needle: str) -> str:
        await socket.send(json.dumps({"type": "message", "text": text, "client_id": text}))
        return await until(socket, needle)

    server = await asyncio.to_thread(serve, port)
    try:
        await wait_for_port(port, server)
        async with page(port) as first:
            await first.recv()
            await say(first, "I want to edit the about page", 'data-running="false"')
            await say(first, "update settings: published no", "Waiting for you to approve")
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
    run = await Run.objects.aget(thread=thread, status=Run.Status.AWAITING_APPROVAL)
    call_id = (await run.steps.aget(kind="approval")).data["call_id"]

    server = await asyncio.to_thread(serve, port)
    try:
        await wait_for_port(port + 1, server)
        async with page(port + 1) as second:
            shown = await second.recv()
            assert "Waiting for you to approve" in shown and call_id in shown
            await second.send(json.dumps({"type": "approve", "call_id": call_id}))
            await until(second, 'data-running="false"')
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
    await run.arefresh_from_db()
    assert run.status == Run.Status.COMPLETED
    about = await Page.objects.aget(slug="about")
    assert about.settings["published"] is False


async def test_serve_fails_when_one_of_its_processes_cannot_listen():
    port = two_free_ports()
    with socket.socket() as taken:  # the second process's port is someone else's
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        server = await asyncio.to_thread(serve, port)
        try:
            _, errors = await asyncio.to_thread(server.communicate, timeout=60)
        finally:
            server.kill()
    assert server.returncode == 1  # not 0: a supervisor must see it failed
    assert "A server process ended by itself; all were stopped." in errors
