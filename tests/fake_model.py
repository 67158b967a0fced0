"""A scriptable OpenAI-compatible model server for fault tests: each request is answered by
the next script, a list of steps, over real HTTP on 127.0.0.1.

    server = FakeModel([text("Hel", "lo"), done()], [keep_alive_forever()])

Steps: `head(status)` (sent first unless a script starts with one), `text(...)`, `chunk(dict)`,
`comment()`, `sleep(s)`, `finish(reason)`, `done()`, `hang()` (send nothing more until the
client goes), `close()`. The last script answers every later request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

Step = tuple[str, Any]


def head(status: int = 200, body: dict[str, Any] | None = None) -> Step:
    return ("head", (status, body))


def text(*pieces: str) -> list[Step]:
    return [("chunk", {"choices": [{"index": 0, "delta": {"content": p}}]}) for p in pieces]


def chunk(value: dict[str, Any]) -> Step:
    return ("chunk", value)


def raw(line: str) -> Step:
    return ("raw", line)


def comment(what: str = "keep-alive") -> Step:
    return ("raw", f": {what}")


def sleep(seconds: float) -> Step:
    return ("sleep", seconds)


def finish(reason: str = "stop") -> Step:
    return ("chunk", {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})


def done() -> Step:
    return ("raw", "data: [DONE]")


def hang() -> Step:
    return ("hang", None)


def close() -> Step:
    return ("close", None)


def keep_alive_forever(every: float = 0.05) -> list[Step]:
    return [("keep_alive", every)]


def tool_call(call_id: str, name: str, arguments: str) -> Step:
    fragment = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return chunk({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})


def tool_arguments(piece: str, index: int = 0) -> Step:
    """More of a tool call's arguments, as servers stream them."""
    fragment = {"index": index, "function": {"arguments": piece}}
    return chunk({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})


def flatten(script: list[Any]) -> list[Step]:
    steps: list[Step] = []
    for item in script:
        steps.extend(item if isinstance(item, list) else [item])
    return steps


class FakeModel:
    def __init__(self, *scripts: list[Any]) -> None:
        self.scripts = [flatten(script) for script in scripts]
        self.requests: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.url

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            header = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in header.split("\r\n")
                    if line.lower().startswith("content-length:")
                ),
                0,
            )
            body = await reader.readexactly(length)
            self.requests.append(json.loads(body or b"{}"))
            index = min(len(self.requests), len(self.scripts)) - 1
            await self._play(self.scripts[index], writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _play(self, steps: list[Step], writer: asyncio.StreamWriter) -> None:
        if not steps or steps[0][0] != "head":
            steps = [head(), *steps]
        for kind, value in steps:
            if kind == "head":
                status, body = value
                if body is not None:
                    data = json.dumps(body).encode()
                    writer.write(
                        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                        + data
                    )
                    await writer.drain()
                    return
                writer.write(
                    f"HTTP/1.1 {status} OK\r\nContent-Type: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\nConnection: close\r\n\r\n".encode()
                )
            elif kind == "chunk":
                writer.write(f"data: {json.dumps(value)}\n\n".encode())
            elif kind == "raw":
                writer.write(f"{value}\n\n".encode())
            elif kind == "sleep":
                await writer.drain()
                await asyncio.sleep(value)
            elif kind == "keep_alive":
                while True:
                    writer.write(b": keep-alive\n\n")
                    await writer.drain()
                    await asyncio.sleep(value)
            elif kind == "hang":
                await writer.drain()
                await asyncio.Event().wait()
            elif kind == "close":
                break
            await writer.drain()


@contextlib.contextmanager
def fake_model_in_thread(*scripts: list[Any]) -> Iterator[FakeModel]:
    """The fake model on its own event loop in a thread, for synchronous tests and for tests
    whose code under test runs on another loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    model = FakeModel(*scripts)
    try:
        asyncio.run_coroutine_threadsafe(model.start(), loop).result(timeout=10)
        yield model
    finally:
        asyncio.run_coroutine_threadsafe(model.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
