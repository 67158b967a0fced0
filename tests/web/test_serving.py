"""How `manage.py serve` starts Daphne: a page whose handshake waits is not dropped.

Found by the load benchmark: 300 pages connecting at once on PostgreSQL + Redis queue for
the database before their sockets are accepted, and Daphne dropped every handshake not
accepted within its default 5 s — the page saw "did not receive a valid HTTP response".
And how the served application sets Python's garbage collector (chatapp/collector.py): full
collections of the whole heap paused every answer for 70-140 ms under load.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import websockets

from chatapp.collector import YOUNG_THRESHOLD
from chatapp.management.commands.serve import HANDSHAKE_SECONDS, daphne
from tests.web.test_lifecycle import wait_for_port

# An application that takes 6 s to accept a websocket: past Daphne's default, well within ours.
SLOW_HANDSHAKE = """
import asyncio


async def application(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await asyncio.sleep(6)
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "accepted"})
    while (await receive())["type"] != "websocket.disconnect":
        pass
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def handshake(command: list[str], folder: str) -> str:
    """What a page gets from a server started with `command`: its first frame, or why not."""
    server = await asyncio.to_thread(
        subprocess.Popen, command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        port = int(command[command.index("-p") + 1])
        await wait_for_port(port, server)
        async with websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=30) as page:
            return str(await asyncio.wait_for(page.recv(), 10))
    except (websockets.InvalidHandshake, OSError, EOFError) as exc:
        return f"dropped: {exc}"
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 10)


async def test_a_page_whose_handshake_waits_is_not_dropped(tmp_path):
    (tmp_path / "slow_handshake.py").write_text(SLOW_HANDSHAKE)
    app = "slow_handshake:application"
    assert HANDSHAKE_SECONDS > 6
    plain = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(free_port()), app]
    served, dropped = await asyncio.gather(
        handshake(daphne("127.0.0.1", free_port(), app), str(tmp_path)),
        handshake(plain, str(tmp_path)),  # Daphne's default: what the benchmark ran into
    )
    assert served == "accepted"
    assert dropped.startswith("dropped"), dropped


def test_the_served_application_hides_its_startup_from_the_garbage_collector() -> None:
    """Loading chatapp.asgi, as Daphne does, freezes what startup made and collects the
    youngest generation less often; what is made later is still collected."""
    probe = (
        "import gc, chatapp.asgi\n"
        "class Cycle: pass\n"
        "a, b = Cycle(), Cycle(); a.b, b.a = b, a\n"
        "del a, b\n"
        "print(gc.get_freeze_count(), gc.get_threshold()[0], gc.collect())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatapp.settings"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    frozen, young, collected = map(int, done.stdout.split())
    assert frozen > 50_000  # Django, the apps, the templates: the bulk of the heap
    assert young == YOUNG_THRESHOLD > 700  # Python's default
    assert collected >= 2  # the cycle made after startup
