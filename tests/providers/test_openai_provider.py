"""The OpenAI provider, driven through the real `openai` client over real HTTP against the
offline model's OpenAI-compatible server, and against tiny raw servers that misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai as openai_sdk
import pytest

from chatapp.providers import openai as openai_provider
from chatapp.providers.base import (
    ChatMessage,
    Finished,
    ProviderError,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolDefinition,
    Usage,
)
from chatapp.providers.offline.model import OfflineProvider
from chatapp.providers.offline.server import OfflineModelServer, serve_in_thread
from chatapp.providers.openai import OpenAIProvider

SET_TITLE = ToolDefinition(
    "set_title",
    "Set the title of the page being edited.",
    {
        "properties": {"title": {"title": "Title", "type": "string"}},
        "required": ["title"],
        "title": "set_title",
        "type": "object",
    },
)


def make_request(*messages: ChatMessage, temperature: float | None = None) -> ProviderRequest:
    return ProviderRequest(
        model="offline",
        instructions="You are editing the page about. Be brief.",
        messages=messages,
        tools=(SET_TITLE,),
        temperature=temperature,
    )


async def collect(provider: Any, request: ProviderRequest) -> list[ProviderEvent]:
    return [event async for event in provider.stream(request)]


@pytest.fixture
def received() -> list[dict[str, Any]]:
    return []


@pytest.fixture
async def model_server(received: list[dict[str, Any]]) -> AsyncIterator[OfflineModelServer]:
    server = OfflineModelServer(on_request=received.append)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


@pytest.fixture
def provider(model_server: OfflineModelServer) -> OpenAIProvider:
    return OpenAIProvider(base_url=model_server.url, api_key="test-key", max_retries=0)


# --- through the real client, against the offline model's server ----------------------------


async def test_text_streams_in_chunks_exactly_as_the_offline_model_says_it(
    provider: OpenAIProvider,
) -> None:
    request = make_request(ChatMessage("user", "What can you do?"))
    events = await collect(provider, request)
    assert events == await collect(OfflineProvider(), request)
    chunks = [e for e in events if isinstance(e, TextChunk)]
    assert len(chunks) > 5
    assert "offline model" in "".join(c.text for c in chunks).lower()
    assert isinstance(events[-2], Usage) and events[-2].completion_tokens == len(chunks)
    assert events[-1] == Finished("stop")


async def test_a_tool_call_streamed_in_fragments_is_assembled(provider: OpenAIProvider) -> None:
    request = make_request(ChatMessage("user", "set the title to Who we are, and nothing else"))
    events = await collect(provider, request)
    calls = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert len(calls) == 1
    assert calls[0].name == "set_title"
    assert json.loads(calls[0].arguments) == {"title": "Who we are, and nothing else"}
    assert events == await collect(OfflineProvider(), request)  # same id, same usage
    assert events[-1] == Finished("tool_calls")


async def test_the_wire_format_of_the_messages(
    provider: OpenAIProvider, received: list[dict[str, Any]]
) -> None:
    call = ToolCall("call_1", "select_page", '{"page": "about"}')
    request = make_request(
        ChatMessage("user", "I want to edit the about page"),
        ChatMessage("assistant", tool_calls=(call,), name="Welcome desk!"),
        ChatMessage("tool", "Now editing about.", tool_call_id="call_1"),
        ChatMessage("system", "Handed from Welcome to Page editor; page_id=about"),
        ChatMessage("assistant", "[Welcome] Over to the editor.", name="Welcome"),
        ChatMessage("user", "hi"),
        temperature=0.2,
    )
    await collect(provider, request)
    body = received[-1]
    assert body["messages"] == [
        {"role": "system", "content": "You are editing the page about. Be brief."},
        {"role": "user", "content": "I want to edit the about page"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "select_page", "arguments": '{"page": "about"}'},
                }
            ],
            "name": "Welcome_desk",
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Now editing about."},
        {"role": "system", "content": "Handed from Welcome to Page editor; page_id=about"},
        {"role": "assistant", "content": "[Welcome] Over to the editor.", "name": "Welcome"},
        {"role": "user", "content": "hi"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "set_title",
                "description": SET_TITLE.description,
                "parameters": SET_TITLE.parameters,
            },
        }
    ]
    assert (body["stream"], body["stream_options"], body["temperature"]) == (
        True,
        {"include_usage": True},
        0.2,
    )
    assert set(body) == {"model", "messages", "tools", "stream", "stream_options", "temperature"}


async def test_no_tools_and_no_temperature_are_left_out(
    provider: OpenAIProvider, received: list[dict[str, Any]]
) -> None:
    await collect(provider, ProviderRequest("offline", "", (ChatMessage("user", "hi"),)))
    assert received[-1]["messages"] == [{"role": "user", "content": "hi"}]
    assert "tools" not in received[-1] and "temperature" not in received[-1]


def test_settings_are_read_at_call_time(settings: Any) -> None:
    provider = OpenAIProvider()
    settings.OPENAI_MODEL = "gpt-test"
    assert provider.default_model == "gpt-test"


async def test_one_client_per_loop_and_settings(model_server: OfflineModelServer) -> None:
    key = ("k", model_server.url, 5.0, 0)
    client = openai_provider._client_for(key)
    assert openai_provider._client_for(key) is client
    assert openai_provider._client_for(("other", model_server.url, 5.0, 0)) is not client


# --- the offline model's server itself -------------------------------------------------------


async def raw_http(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """Status and body of one request, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b"Connection: close" in rest
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_the_server_streams_tool_calls_in_small_fragments(
    model_server: OfflineModelServer,
) -> None:
    payload = {
        "model": "offline",
        "messages": [{"role": "user", "content": "set the title to Who we are"}],
        "tools": [{"type": "function", "function": {"name": "set_title", **{
            "description": SET_TITLE.description, "parameters": SET_TITLE.parameters}}}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    status, body = await raw_http(
        model_server.port, "POST", "/v1/chat/completions", json.dumps(payload).encode()
    )
    assert status == 200
    lines = [line.removeprefix("data: ") for line in body.decode().split("\n\n") if line]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    first, rest = fragments[0], fragments[1:]
    assert first["function"] == {"name": "set_title", "arguments": ""} and first["id"]
    assert len(rest) >= 3 and all(len(f["function"]["arguments"]) <= 8 for f in rest)
    assert json.loads("".join(f["function"]["arguments"] for f in rest)) == {"title": "Who we are"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", b'{"messages": 3}', 400, "list of messages"),
        ("GET", "/v1/chat/completions", b"", 405, "POST only"),
        ("GET", "/v2/anything", b"", 404, "Unknown path"),
    ],
)
async def test_the_server_answers_bad_requests_in_openai_shape(
    model_server: OfflineModelServer,
    method: str,
    path: str,
    body: bytes,
    status: int,
    message: str,
) -> None:
    got_status, got_body = await raw_http(model_server.port, method, path, body)
    error = json.loads(got_body)["error"]
    assert got_status == status
    assert message in error["message"] and set(error) == {"message", "type", "code"}


def test_serve_in_thread_answers_the_typed_client_without_streaming() -> None:
    with serve_in_thread() as url:
        client = openai_sdk.OpenAI(base_url=url, api_key="x", max_retries=0)
        completion = client.chat.completions.create(
            model="offline", messages=[{"role": "user", "content": "hello"}]
        )
        models = [model.id for model in client.models.list()]
        client.close()
    assert completion.choices[0].message.content == "Offline model: You said: “hello”."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert models == ["offline"]


# --- errors ----------------------------------------------------------------------------------


def http_answer(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


class RawServer:
    """Answers every request with the same bytes (hangs up when they are empty, never answers
    when they are None) and keeps what it was sent."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.released = asyncio.Event()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        if self.answer is None:
            await self.released.wait()
        else:
            writer.write(self.answer)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        self.released.set()
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def raw_server(
    answer: bytes | None, wait: float = 5
) -> AsyncIterator[tuple[RawServer, OpenAIProvider]]:
    server = RawServer(answer)
    url = await server.start()
    try:
        yield server, OpenAIProvider(base_url=url, api_key="k", max_retries=0, timeout=wait)
    finally:
        await server.close()


def error_body(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "x", "code": None}}).encode()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "refused the API key (401): Incorrect API key"),
        (403, "may not use this model or endpoint (403)"),
        (404, "has no model 'gpt-test' (404)"),
        (429, "rate limiting or out of quota (429)"),
        (500, "answered 500: Incorrect API key"),
        (418, "answered 418: Incorrect API key"),
    ],
)
async def test_http_errors_become_plain_provider_errors(status: int, expected: str) -> None:
    request = ProviderRequest("gpt-test", "", (ChatMessage("user", "hi"),))
    async with raw_server(http_answer(status, error_body("Incorrect API key"))) as (_, provider):
        with pytest.raises(ProviderError, match=re.escape(expected)) as caught:
            await collect(provider, request)
    assert "127.0.0.1" not in str(caught.value)  # users are not shown the server's address
    assert re.match(rf"http://127\.0\.0\.1:\d+/v1 answered {status}", caught.value.detail)


async def test_a_server_that_hangs_up_could_not_be_reached() -> None:
    async with raw_server(b"") as (server, provider):
        with pytest.raises(ProviderError, match=r"^The model server could not be reached\.$"):
            await collect(provider, make_request(ChatMessage("user", "hi")))
    assert server.requests  # it did get there


async def test_a_server_that_never_answers_times_out() -> None:
    async with raw_server(None, wait=0.2) as (_, provider):
        with pytest.raises(ProviderError, match=r"did not answer within 0\.2 s"):
            await collect(provider, make_request(ChatMessage("user", "hi")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nothing_listening_could_not_be_reached() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    provider = OpenAIProvider(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(ProviderError, match="could not be reached") as caught:
        await collect(provider, make_request(ChatMessage("user", "hi")))
    assert caught.value.detail.startswith(f"{url}: ConnectError")


def sse(*lines: str) -> bytes:
    return http_answer(200, "".join(f"{line}\n\n" for line in lines).encode(), "text/event-stream")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (sse('data: {"choices": [', "data: [DONE]"), "sent a malformed answer"),
        (sse('data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}'), "stopped before"),
        (sse('data: {"error": {"message": "overloaded"}}'), "reported an error: overloaded"),
    ],
)
async def test_a_broken_stream_becomes_a_provider_error(answer: bytes, expected: str) -> None:
    async with raw_server(answer) as (_, provider):
        with pytest.raises(ProviderError, match=expected):
            await collect(provider, make_request(ChatMessage("user", "hi")))


class KeepAliveServer:
    """Answers every request with the same SSE lines, HTTP/1.1 chunked, and keeps the
    connection for the next request, as OpenAI's API does; counts the connections.
    `ends=False`: a server that holds the response open after [DONE]."""

    def __init__(self, *lines: str, ends: bool = True) -> None:
        self.lines, self.ends = lines, ends
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = re.search(r"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for line in self.lines:
                    data = f"{line}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                if self.ends:
                    writer.write(b"0\r\n\r\n")
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        self.server.close()
        for writer in self.writers:  # the client's pool still holds them
            writer.close()
        await self.server.wait_closed()


HI_AND_DONE = (
    'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}',
    "data: [DONE]",
)


async def test_answers_one_after_another_share_one_connection() -> None:
    """The body's end after [DONE] is read, so the connection serves the next answer: against
    a remote API each new one is a TCP and TLS handshake before the first word."""
    server = KeepAliveServer(*HI_AND_DONE)
    provider = OpenAIProvider(base_url=await server.start(), api_key="k", max_retries=0)
    try:
        for _ in range(3):
            assert await collect(provider, make_request()) == [TextChunk("Hi"), Finished("stop")]
    finally:
        await server.close()
    assert server.connections == 1


async def test_a_response_held_open_after_done_still_ends_the_answer() -> None:
    """A server that never ends the body after [DONE]: the answer is whole and ends; only that
    connection is not kept."""
    server = KeepAliveServer(*HI_AND_DONE, ends=False)
    provider = OpenAIProvider(base_url=await server.start(), api_key="k", max_retries=0)
    try:
        async with asyncio.timeout(10):  # far below the 60 s read timeout it would wait for
            for _ in range(2):
                events = await collect(provider, make_request())
                assert events == [TextChunk("Hi"), Finished("stop")]
    finally:
        await server.close()
    assert server.connections == 2


async def test_a_local_server_needs_no_key(settings: Any) -> None:
    done = 'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}'
    async with raw_server(sse(": keep-alive", done, "data: [DONE]")) as (server, _):
        settings.OPENAI_BASE_URL = f"http://127.0.0.1:{server.server.sockets[0].getsockname()[1]}"
        events = await collect(OpenAIProvider(max_retries=0), make_request())
    assert events == [TextChunk("Hi"), Finished("stop")]
    assert b"Bearer not-needed" in server.requests[0]


async def test_no_key_and_no_base_url_is_a_plain_error() -> None:
    with pytest.raises(ProviderError, match="No OPENAI_API_KEY is set"):
        await collect(OpenAIProvider(), make_request(ChatMessage("user", "hi")))


# --- the management command ------------------------------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def command_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    process = subprocess.Popen(
        [sys.executable, str(manage), "serve_offline_model", "--port", str(port), "--delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline, "it did not start"
            time.sleep(0.05)
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_command_serves_the_offline_model(
    command_server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = command_server
    url = f"http://127.0.0.1:{port}/v1"
    provider = OpenAIProvider(base_url=url, max_retries=0)
    events = await collect(provider, make_request(ChatMessage("user", "hi")))
    assert "".join(e.text for e in events if isinstance(e, TextChunk)).startswith("Offline model:")
    process.terminate()
    output, _ = process.communicate(timeout=10)
    assert url in output
