"""The offline model behind an OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/models`).

It lets the OpenAI provider be exercised through the real client over real HTTP, and gives
benchmarks a model of known speed. A deliberately small HTTP/1.1 server on asyncio streams: one
request per connection, answered with `Connection: close`, so a streamed body simply ends when
the connection does and no chunked encoding is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from chatapp.providers.base import (
    ProviderRequest,
)
from chatapp.providers.offline.model import OfflineProvider
from chatapp.providers.offline.wire import HttpProblem, complete, request_from_openai, stream_chunks

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
READ_TIMEOUT = 30.0  # seconds a client may take to send its request


def _head(status: int, content_type: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += ["Cache-Control: no-cache", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _json_response(status: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    return _head(status, "application/json", len(body)) + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """Method, path and body of one request; HttpProblem when it is not one we can read."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, target, _version = head.split("\r\n", 1)[0].split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        length = int(headers.get("content-length") or 0)
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise HttpProblem(400, f"Malformed HTTP request: {exc}") from exc
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpProblem(413, f"The body may not exceed {MAX_BODY_BYTES} bytes.")
    body = await reader.readexactly(length)
    return method, target.split("?", 1)[0].rstrip("/"), body


class OfflineModelServer:
    """`start()` it, point an OpenAI client at `.url`, `close()` it. `on_request` sees the JSON
    body of every chat completion request (tests check the wire format with it)."""

    def __init__(
        self,
        *,
        delay: float | None = None,
        on_request: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.provider = OfflineProvider(delay=delay)
        self.on_request = on_request
        self.host = "127.0.0.1"
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._server = await asyncio.start_server(self._connection, host, port)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The server is not started.")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):  # a slow client must not keep us from stopping
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or never finished its request: nobody to answer
        except Exception:
            logger.exception("The offline model server failed to answer a request")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                method, path, body = await _read_request(reader)
            await self._route(method, path, body, writer)
        except HttpProblem as problem:
            writer.write(_json_response(problem.status, problem.body()))
        await writer.drain()

    async def _route(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        routes = {"/v1/chat/completions": "POST", "/v1/models": "GET"}
        if path not in routes:
            raise HttpProblem(404, f"Unknown path {path!r}.", "unknown_url")
        if method != routes[path]:
            raise HttpProblem(405, f"{path} answers {routes[path]} only.", "method_not_allowed")
        if path == "/v1/models":
            model = {"id": "offline", "object": "model", "created": 0, "owned_by": "chatapp"}
            writer.write(_json_response(200, {"object": "list", "data": [model]}))
            return
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpProblem(400, f"The body is not valid JSON: {exc}", "invalid_json") from exc
        request = request_from_openai(payload)
        if self.on_request is not None:
            self.on_request(payload)
        await self._chat_completion(payload, request, writer)

    async def _chat_completion(
        self, payload: dict[str, Any], request: ProviderRequest, writer: asyncio.StreamWriter
    ) -> None:
        events = self.provider.stream(request)
        if not payload.get("stream"):
            writer.write(_json_response(200, await complete(events, request.model)))
            return
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        writer.write(_head(200, "text/event-stream"))
        async for chunk in stream_chunks(events, request.model, include_usage):
            writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await writer.drain()  # each word leaves when the model says it
        writer.write(b"data: [DONE]\n\n")


@contextlib.contextmanager
def serve_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    delay: float | None = None,
    on_request: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[str]:
    """Run the server on its own event loop in a background thread; yields the base URL.
    For synchronous code and fixtures that cannot share the caller's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="offline-model-server", daemon=True)
    thread.start()
    server = OfflineModelServer(delay=delay, on_request=on_request)
    try:
        asyncio.run_coroutine_threadsafe(server.start(host, port), loop).result(timeout=10)
        yield server.url
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
