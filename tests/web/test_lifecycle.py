"""Runs that end without finishing still end on every page: a server stopped with SIGTERM or
SIGINT saves its runs as interrupted before it exits, and a run whose process died is found
by the sweep and its pages are told at once."""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.utils import timezone

from chatapp import services
from chatapp.models import Message, Run
from chatapp.web import lifecycle
from tests.factories import assistant
from tests.processes import ROOT, environment
from tests.web.test_consumer import connect, frames_until, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(user):
    return services.start_thread(assistant("helper", name="Helper"), user=user)


def dead_run(thread, text: str = "Half of") -> Run:
    """A run whose process died 10 minutes ago, in the middle of a message."""
    long_ago = timezone.now() - timedelta(minutes=10)
    _, run = services.send_message(thread, "hello")
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.IN_PROGRESS, started_at=long_ago, heartbeat_at=long_ago
    )
    Run.objects.filter(pk=run.pk).update(created_at=long_ago)
    Message.objects.create(
        thread=thread,
        run=run,
        role=Message.Role.ASSISTANT,
        assistant=thread.current_assistant,
        content=text,
        status=Message.Status.INCOMPLETE,
    )
    return run


async def test_the_sweep_expires_a_dead_run_and_tells_its_pages(thread, user):
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    run = await sync_to_async(dead_run)(thread)
    expired = await lifecycle.sweep()
    assert [e.run_id for e in expired] == [str(run.pk)]
    frames = "".join(await frames_until(communicator, 'data-running="false"'))
    assert "msg--incomplete" in frames and "Half of" in frames
    assert "The run stopped answering and was given up." in html.unescape(frames)
    await run.arefresh_from_db()
    assert run.status == "expired"
    await communicator.disconnect()


async def test_a_server_process_sweeps_by_itself(thread, user, settings):
    settings.CHATAPP_RUN_EXPIRY = 0.6  # a sweep every 0.2 s
    communicator, _ = await connect(thread.pk, user)  # starts this process's sweep
    await communicator.receive_from()
    await sync_to_async(dead_run)(thread)
    frames = await frames_until(communicator, 'data-running="false"', wait=5)
    assert "given up" in "".join(frames)
    await communicator.disconnect()


async def test_stop_frees_a_thread_whose_run_nobody_is_running(thread, user, script):
    from chatapp.providers.scripted import Say

    run = await sync_to_async(dead_run)(thread)
    # Silent for a third of the expiry: not yet expired, but nobody is running it.
    recent = timezone.now() - timedelta(seconds=15)
    await Run.objects.filter(pk=run.pk).aupdate(heartbeat_at=recent, created_at=recent)
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "cancel"})
    frames = "".join(await frames_until(communicator, 'data-running="false"'))
    assert "msg--incomplete" in frames and "Half of" in frames
    await run.arefresh_from_db()
    assert run.status == "cancelled"
    script(Say("Here again."))
    await communicator.send_json_to({"type": "message", "text": "are you there?"})
    await frames_until(communicator, "Here again.")
    await communicator.disconnect()


# --- a real server, stopped with a signal ----------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, server: subprocess.Popen) -> None:
    for _ in range(200):
        assert server.poll() is None, "the server did not start"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError("the server did not listen")


TEXT_FRAME = re.compile(r'<div id="msg-\d+-body" hx-swap-oob="beforeend">(.*)</div>', re.S)
ASGI = "chatapp.asgi:application"


def start_daphne(port: int) -> subprocess.Popen:
    """Daphne serving chatapp on this session's test database, with the offline model at
    about 7 words a second and text flushed only every 5 s: whatever it streamed must still
    be saved when it is stopped."""
    return subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI],
        cwd=ROOT,
        env=environment(OFFLINE_MODEL_DELAY="0.15", CHATAPP_FLUSH_INTERVAL="5"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def streamed(frame: str) -> str:
    """The text a streaming-text frame appends to its message."""
    found = TEXT_FRAME.fullmatch(frame.strip())
    return html.unescape(found.group(1)) if found else ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stopped_server_saves_its_runs_as_interrupted(user, sig):
    bot = await sync_to_async(assistant)("bot", name="Bot", provider="offline")
    thread = await sync_to_async(services.start_thread)(bot, user=user)
    port = free_port()
    server = start_daphne(port)
    shown = ""
    try:
        await wait_for_port(port, server)
        cookie = (await session_cookie(user)).decode()
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/threads/{thread.pk}/",
            additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"},
        ) as socket:
            await socket.recv()
            await socket.send(json.dumps({"type": "message", "text": "hello", "client_id": "c1"}))
            async with asyncio.timeout(20):
                while len(shown.split()) < 3:
                    shown += streamed(await socket.recv())
            server.send_signal(sig)
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(20):
                    while True:
                        shown += streamed(await socket.recv())
        await asyncio.to_thread(server.wait, 20)
    finally:
        server.kill()
        server.wait()
    run = await Run.objects.aget()
    assert run.status == "interrupted", server.stderr.read()
    assert run.error == "The server restarted while answering; ask again."
    reply = await Message.objects.aget(run=run, role="assistant")
    # Nothing streamed is lost, though the text was last flushed 5 s before (or never).
    assert reply.status == "incomplete" and shown and reply.content.startswith(shown)
    await sync_to_async(services.send_message)(thread, "again")  # the thread is free
