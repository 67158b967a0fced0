"""The load benchmark's pages: websocket clients logged in with a session, one thread each,
that send a message and time every token of the answer as it arrives.

A token is the wall-clock time the fake model (bench/timed_model.py) wrote it; its lag is
when a page received it minus that. The first token also says when the model got the request,
so a page can tell chatapp's time to first token from the model's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets

TOKEN = re.compile(r" (r|t)(\d{10}\.\d{4})")
TEXT_FRAME = re.compile(r'<div id="msg-\d+-body" hx-swap-oob="beforeend">(.*?)</div>', re.S)
DONE = 'data-running="false"'


@dataclass
class Page:
    url: str  # ws://host:port/ws/threads/<id>/
    cookie: str
    relay: bool = False  # the baseline's frames are the text itself

    tokens: int = 0
    lags: list[float] = field(default_factory=list)
    connected_in: float = 0.0  # from opening the socket to the thread shown (its first frame)
    first_token: float = 0.0  # chatapp's own time to the first token: total minus the model's
    dropped: str = ""


def text_of(frame: str, relay: bool) -> str:
    return frame if relay else "".join(TEXT_FRAME.findall(frame))


async def connect(page: Page) -> websockets.ClientConnection:
    origin = page.url.replace("ws://", "http://").split("/ws/")[0]
    started = time.monotonic()
    socket = await websockets.connect(
        page.url,
        additional_headers={"Cookie": page.cookie, "Origin": origin},
        max_size=4 * 1024 * 1024,
        open_timeout=120,
        ping_interval=None,  # Daphne pings; a busy client must not fail its own pings
    )
    if not page.relay:
        await socket.recv()  # the thread as it is: the page is ready
    page.connected_in = time.monotonic() - started
    return socket


async def answer(
    page: Page, socket: websockets.ClientConnection, deadline: float, wait: float = 0.0
) -> None:
    """Send one message (after `wait` seconds) and read the answer to its end, timing each
    token."""
    await asyncio.sleep(wait)
    sent = time.time()
    frame = {"type": "message", "text": "go", "client_id": uuid.uuid4().hex}
    await socket.send(json.dumps(frame))
    try:
        async with asyncio.timeout(deadline):
            async for frame in socket:
                now = time.time()
                for kind, stamp in TOKEN.findall(text_of(frame, page.relay)):
                    if kind == "r":  # when the model got the request
                        arrived = float(stamp)
                        continue
                    emitted = float(stamp)
                    if page.tokens == 0:
                        page.first_token = (now - sent) - (emitted - arrived)
                    page.tokens += 1
                    page.lags.append(now - emitted)
                if DONE in frame:
                    return
    except TimeoutError:
        page.dropped = "no end of answer in time"
    except websockets.ConnectionClosed as closed:
        page.dropped = f"closed {closed.rcvd.code if closed.rcvd else '?'}"


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def round_of(
    pages: list[Page],
    deadline: float,
    connected: Callable[[], None] = lambda: None,
    spread: float = 0.0,
) -> dict[str, float]:
    """Every page connects, then all send at once, or one after another evenly over `spread`
    seconds (`connected` is called in between); figures over all tokens of all answers."""
    sockets = await asyncio.gather(*(connect(page) for page in pages))
    connected()
    waits = [spread * i / len(pages) for i in range(len(pages))]
    try:
        await asyncio.gather(
            *(answer(p, s, deadline, w) for p, s, w in zip(pages, sockets, waits, strict=True))
        )
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    lags = [lag for page in pages for lag in page.lags]
    return {
        "pages": len(pages),
        "tokens": sum(page.tokens for page in pages),
        "p50": percentile(lags, 0.50),
        "p99": percentile(lags, 0.99),
        "max": max(lags, default=float("nan")),
        "ttft_p50": percentile([p.first_token for p in pages if p.tokens], 0.5),
        # All N connect at once: a reconnect storm, as after a restart.
        "connect_p99": percentile([p.connected_in for p in pages], 0.99),
        "dropped": sum(1 for page in pages if page.dropped),
    }
