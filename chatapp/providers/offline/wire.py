"""The OpenAI Chat Completions wire format, as the offline model's HTTP facade speaks it:
requests in, `chat.completion` objects and `chat.completion.chunk` events out."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from chatapp.providers.base import (
    ChatMessage,
    Finished,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolDefinition,
    Usage,
)

ARGUMENT_PIECE = 8  # tool-call arguments are streamed in pieces this long, as real servers do


class HttpProblem(Exception):
    """An error answer in OpenAI's shape: {"error": {"message", "type", "code"}}."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": "invalid_request_error", "code": self.code}
        }


# --- the OpenAI request format -> ours -------------------------------------------------------


def request_from_openai(body: Any) -> ProviderRequest:
    """Leading system (or developer) messages become the instructions; later ones stay."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise HttpProblem(400, "The body must be a JSON object with a list of messages.")
    instructions: list[str] = []
    messages: list[ChatMessage] = []
    for item in body["messages"]:
        if not isinstance(item, dict):
            raise HttpProblem(400, "Each message must be a JSON object.")
        if not messages and item.get("role") in ("system", "developer"):
            instructions.append(_content_text(item.get("content")))
        else:
            messages.append(_message_from_openai(item))
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise HttpProblem(400, "tools must be a list.")
    temperature = body.get("temperature")
    return ProviderRequest(
        model=str(body.get("model") or "offline"),
        instructions="\n\n".join(instructions),
        messages=tuple(messages),
        tools=tuple(_tool_from_openai(tool) for tool in tools),
        temperature=float(temperature) if isinstance(temperature, int | float) else None,
    )


def _content_text(content: Any) -> str:
    """A message's content is a string or a list of parts; only text parts mean anything here."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _message_from_openai(item: dict[str, Any]) -> ChatMessage:
    role = item.get("role")
    content = _content_text(item.get("content"))
    if role in ("system", "developer"):
        return ChatMessage("system", content)
    if role == "user":
        return ChatMessage("user", content, name=str(item.get("name") or ""))
    if role == "tool":
        return ChatMessage("tool", content, tool_call_id=str(item.get("tool_call_id") or ""))
    if role == "assistant":
        calls = tuple(_call_from_openai(call) for call in item.get("tool_calls") or ())
        return ChatMessage("assistant", content, tool_calls=calls, name=str(item.get("name") or ""))
    raise HttpProblem(400, f"Unsupported message role: {role!r}.")


def _call_from_openai(call: Any) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise HttpProblem(400, "Each tool call needs a function with a name.")
    return ToolCall(str(call.get("id") or ""), function["name"], function.get("arguments") or "")


def _tool_from_openai(tool: Any) -> ToolDefinition:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise HttpProblem(400, 'Each tool must be {"type": "function", "function": {"name": …}}.')
    parameters = function.get("parameters")
    return ToolDefinition(
        name=function["name"],
        description=function.get("description") or "",
        parameters=parameters if isinstance(parameters, dict) else {},
    )


# --- our events -> the OpenAI response format ------------------------------------------------


def tool_call_fragments(index: int, call: ToolCall) -> list[dict[str, Any]]:
    """Name first with empty arguments, then the arguments in short pieces: clients must
    assemble them, exactly as with a real server."""
    head = {"index": index, "id": call.id, "type": "function"}
    fragments = [head | {"function": {"name": call.name, "arguments": ""}}]
    for start in range(0, len(call.arguments), ARGUMENT_PIECE):
        piece = call.arguments[start : start + ARGUMENT_PIECE]
        fragments.append({"index": index, "function": {"arguments": piece}})
    return fragments


def _usage(usage: Usage) -> dict[str, int]:
    total = usage.prompt_tokens + usage.completion_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": total,
    }


@dataclass
class _Completion:
    """The envelope every chunk of one answer shares."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def envelope(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self.envelope("chat.completion.chunk") | {"choices": [choice]}

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        """Sent last when the client asked for usage: no choices, only the counts."""
        return self.envelope("chat.completion.chunk") | {"choices": [], "usage": _usage(usage)}


async def stream_chunks(
    events: AsyncIterator[ProviderEvent], model: str, include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    """The provider's events as `chat.completion.chunk` objects, in the order OpenAI sends."""
    completion = _Completion(model)
    yield completion.chunk({"role": "assistant", "content": ""})
    usage: Usage | None = None
    index = 0
    async for event in events:
        if isinstance(event, TextChunk):
            yield completion.chunk({"content": event.text})
        elif isinstance(event, ToolCallReady):
            for fragment in tool_call_fragments(index, event.call):
                yield completion.chunk({"tool_calls": [fragment]})
            index += 1
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finished):
            yield completion.chunk({}, finish_reason=event.reason)
    if include_usage and usage is not None:
        yield completion.usage_chunk(usage)


async def complete(events: AsyncIterator[ProviderEvent], model: str) -> dict[str, Any]:
    """The provider's events as one `chat.completion` object."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    usage, reason = Usage(), "stop"
    async for event in events:
        if isinstance(event, TextChunk):
            text.append(event.text)
        elif isinstance(event, ToolCallReady):
            function = {"name": event.call.name, "arguments": event.call.arguments}
            calls.append({"id": event.call.id, "type": "function", "function": function})
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finished):
            reason = event.reason
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": reason, "logprobs": None}
    return _Completion(model).envelope("chat.completion") | {
        "choices": [choice],
        "usage": _usage(usage),
    }


# --- the server ------------------------------------------------------------------------------
