"""OpenAI Chat Completions (or any OpenAI-compatible server) as a provider.

The only module that imports `openai`. It keeps the client for what it does well — auth,
base_url, retries, HTTP errors — but reads the stream's raw SSE lines and decodes each with
`json`: the typed stream builds a pydantic object per chunk, which measured ~10x more lag under
load (DESIGN.md, "Performance budgets").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import openai
from django.conf import settings

from chatapp.providers.base import (
    ChatMessage,
    Finished,
    Progress,
    ProviderError,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCall,
    ToolCallReady,
    Usage,
)
from chatapp.providers.sockets import asyncio_transport

OPENAI_URL = "https://api.openai.com/v1"
# A local OpenAI-compatible server (Ollama, vLLM, llama.cpp) wants no key, but the client does.
PLACEHOLDER_KEY = "not-needed"
PROGRESS_EVERY = 1.0  # seconds: how often pieces of a tool call say the answer is alive

_ClientKey = tuple[str, str, float, int]


class StreamCut(ProviderError):
    """The stream ended without saying the answer was finished."""


# One client per event loop: its connection pool is bound to the loop that opened it.
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[_ClientKey, openai.AsyncOpenAI]
] = weakref.WeakKeyDictionary()


def _client_for(key: _ClientKey) -> openai.AsyncOpenAI:
    # A closed loop's clients are dead; drop them (their pools keep the loop itself alive).
    for stale in [loop for loop in _clients if loop.is_closed()]:
        del _clients[stale]
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    if key not in per_loop:
        api_key, base_url, timeout, max_retries = key
        per_loop[key] = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client(),
        )
    return per_loop[key]


def http_client() -> openai.DefaultAsyncHttpxClient | None:
    """The client's HTTP client, reading on asyncio's sockets (sockets.py); the `openai`
    default (None) where the environment names a proxy: httpx2 reads HTTP(S)_PROXY only for
    a client built with its own transport."""
    if urllib.request.getproxies():
        return None
    transport = asyncio_transport(openai.DEFAULT_CONNECTION_LIMITS)  # the client's own limits
    return openai.DefaultAsyncHttpxClient(transport=transport)


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        # None means "the setting, read at call time", so tests and settings changes apply.
        self.api_key = api_key
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries

    @property
    def default_model(self) -> str:
        return str(settings.OPENAI_MODEL)

    def _client_key(self) -> _ClientKey:
        api_key = self.api_key if self.api_key is not None else settings.OPENAI_API_KEY
        base_url = self.base_url if self.base_url is not None else settings.OPENAI_BASE_URL
        if not api_key and not base_url:
            raise ProviderError(
                "No OPENAI_API_KEY is set; set it, or OPENAI_BASE_URL for an OpenAI-compatible "
                "server, or use the offline model."
            )
        timeout = self.timeout if self.timeout is not None else settings.OPENAI_TIMEOUT
        retries = self.max_retries if self.max_retries is not None else settings.OPENAI_MAX_RETRIES
        # An explicit URL, so an OPENAI_BASE_URL in the environment cannot override settings.
        return (api_key or PLACEHOLDER_KEY, base_url or OPENAI_URL, float(timeout), int(retries))

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        """Stream one answer. A failure before anything was streamed (a timeout after the
        response headers, a broken connection) is tried again, up to `max_retries` times, as
        the client itself does for failures before the headers."""
        key = self._client_key()
        client = _client_for(key)
        where = redacted(key[1])
        model = request.model or self.default_model
        arguments = create_arguments(request, model)
        for attempt in range(key[3] + 1):
            streamed = False
            try:
                # The body we built goes as `extra_body`, which the client sends as it is.
                # As arguments it would first be walked against the client's typed parameters
                # (~1.6 ms of CPU for ten messages and three tools) to send the same JSON.
                async with client.chat.completions.with_streaming_response.create(
                    model=model, messages=[], stream=True, extra_body=arguments
                ) as response:
                    async for event in decode_stream(response.iter_lines()):
                        streamed = True
                        yield event
                return
            except openai.OpenAIError as exc:
                raise translate_error(exc, where=where, model=model, timeout=key[2]) from exc
            except (httpx2.HTTPError, httpx2.StreamError, StreamCut) as exc:  # after the headers
                error = broken_stream(exc, where=where, timeout=key[2], streamed=streamed)
                if streamed or attempt == key[3]:
                    raise error from exc
                await asyncio.sleep(min(0.5 * 2**attempt, 8))


# --- our request -> the wire format ----------------------------------------------------------


def create_arguments(request: ProviderRequest, model: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": model,
        "messages": wire_messages(request),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        arguments["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    return arguments


def wire_messages(request: ProviderRequest) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": request.instructions}] if request.instructions else []
    return messages + [wire_message(message) for message in request.messages]


def wire_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None  # OpenAI's shape for "only tool calls"
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if name := sanitise_name(message.name):
        wire["name"] = name
    return wire


def sanitise_name(name: str) -> str:
    """OpenAI accepts names matching ^[a-zA-Z0-9_-]+$ (at most 64): "Page editor" -> Page_editor."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_")[:64]


# --- the wire stream -> our events -----------------------------------------------------------


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamState:
    """What arrives in fragments and is only known at the end of the stream."""

    calls: dict[int, _PendingCall] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: str = ""

    def take(self, chunk: dict[str, Any]) -> list[ProviderEvent]:
        """Read one chunk; returns the text it carries, and keeps the rest for the end."""
        if isinstance(chunk.get("error"), dict):  # some servers report failures mid-stream
            said = _message(chunk["error"])
            raise ProviderError(f"The model server reported an error: {said}", said)
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.usage = Usage(prompt_tokens=prompt or 0, completion_tokens=completion or 0)
        events: list[ProviderEvent] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events.append(TextChunk(delta["content"]))
            for position, fragment in enumerate(delta.get("tool_calls") or ()):
                self._add_fragment(fragment.get("index", position), fragment)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return events

    def _add_fragment(self, index: int, fragment: dict[str, Any]) -> None:
        call = self.calls.setdefault(index, _PendingCall())
        function = fragment.get("function") or {}
        call.id = call.id or fragment.get("id") or ""
        call.name = call.name or function.get("name") or ""
        call.arguments.append(function.get("arguments") or "")

    def final_events(self) -> list[ProviderEvent]:
        events: list[ProviderEvent] = [
            ToolCallReady(
                ToolCall(
                    id=call.id or f"call_{index}",
                    name=call.name,
                    arguments="".join(call.arguments) or "{}",
                )
            )
            for index, call in sorted(self.calls.items())
        ]
        if self.usage is not None:
            events.append(self.usage)
        events.append(Finished(self.finish_reason or ("tool_calls" if self.calls else "stop")))
        return events


# A response closed before its end closes its connection (HTTP/1.1), and the next answer
# pays a new one: a TCP and TLS handshake with a remote API. What follows [DONE] is the end of
# the body, so it is read; for at most this long, for a server that holds the response open
# after it. (The openai client's own stream does the same, with the same bound.)
DRAIN_SECONDS = 0.1


async def drain(lines: AsyncIterator[str]) -> None:
    with contextlib.suppress(TimeoutError, httpx2.HTTPError, httpx2.StreamError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in lines:
                pass


async def decode_stream(lines: AsyncIterator[str]) -> AsyncIterator[ProviderEvent]:
    """SSE lines -> events. Text as it comes; tool calls, usage and the finish at the end,
    with a Progress now and then while only pieces of tool calls arrive."""
    state = StreamState()
    done = False
    last_event = time.monotonic()
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, event:/id: fields
        payload = line.removeprefix("data:").strip()
        if payload == "[DONE]":
            done = True
            await drain(lines)
            break
        try:
            chunk = json.loads(payload)
        except (json.JSONDecodeError, RecursionError):
            raise ProviderError(
                "The model server sent a malformed answer.",
                f"a malformed line: {payload[:80]!r}",
            ) from None
        if not isinstance(chunk, dict):
            raise ProviderError(
                "The model server sent a malformed answer.", f"an unexpected line: {payload[:80]!r}"
            )
        events = state.take(chunk)
        if not events and time.monotonic() - last_event >= PROGRESS_EVERY:
            events = [Progress()]
        for event in events:
            yield event
        if events:
            last_event = time.monotonic()
    if not done and not state.finish_reason:
        raise StreamCut("The model's answer stopped before it was finished.", "the stream ended")
    for event in state.final_events():
        yield event


# --- errors in plain words ---------------------------------------------------------------
# What users read names no server, URL or key; the detail for the log and the admin names the
# server by its address with any credentials removed.


def redacted(url: str) -> str:
    """The URL without user, password, query or fragment: safe for a log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _message(body: object) -> str:
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body) if body else "no details given"


def broken_stream(exc: Exception, *, where: str, timeout: float, streamed: bool) -> ProviderError:
    if isinstance(exc, StreamCut):
        return ProviderError(str(exc), f"{where}: {exc.detail}")
    reason = str(exc) or type(exc).__name__
    detail = f"{where}: {type(exc).__name__} while streaming: {reason}"
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError(
            f"The model server stopped sending the answer for more than {timeout:g} s.", detail
        )
    if streamed:
        return ProviderError("The connection to the model server broke while it answered.", detail)
    return ProviderError("The connection to the model server broke before it answered.", detail)


def translate_error(
    exc: openai.OpenAIError, *, where: str, model: str, timeout: float
) -> ProviderError:
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(
            f"The model server did not answer within {timeout:g} s.", f"{where}: timed out"
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return ProviderError(
            "The model server could not be reached.", f"{where}: {type(cause).__name__}: {cause}"
        )
    if not isinstance(exc, openai.APIStatusError):
        return ProviderError("The model call failed.", f"{where}: {type(exc).__name__}: {exc}")
    detail = _message(exc.body)
    said = f"{where} answered {exc.status_code}: {detail}"
    if isinstance(exc, openai.AuthenticationError):
        return ProviderError(f"The model server refused the API key (401): {detail}", said)
    if isinstance(exc, openai.PermissionDeniedError):
        return ProviderError(
            f"The API key may not use this model or endpoint (403): {detail}", said
        )
    if isinstance(exc, openai.NotFoundError):
        return ProviderError(f"The model server has no model {model!r} (404): {detail}", said)
    if isinstance(exc, openai.RateLimitError):
        return ProviderError(
            f"The model server is rate limiting or out of quota (429): {detail}", said
        )
    return ProviderError(f"The model server answered {exc.status_code}: {detail}", said)
