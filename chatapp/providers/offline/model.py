"""The built-in offline model: deterministic, honest, and able to drive a guided workflow.

It is not a language model. It calls one of the current assistant's tools when the user's
words name it and the message holds every required argument; after a tool result it sums the
result up; otherwise it answers in the voice of the assistant. Every text reply says it comes
from the offline model, and the same request always streams the same events.

How it reads a message is in offline_matching.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence

from django.conf import settings

from chatapp.providers.base import (
    ChatMessage,
    Finished,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCall,
    ToolCallReady,
    Usage,
)
from chatapp.providers.offline.matching import choose_tool

_SUMMARY_CHARS = 160  # a tool result is summed up in at most this many characters


def first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    match = re.match(r".*?[.!?](?=\s|$)", flat)
    return _shorten(match.group(0) if match else flat, 200)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _tool_name_for(call_id: str, messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        for call in message.tool_calls:
            if call.id == call_id:
                return call.name
    return ""


def summarise_tool_result(messages: Sequence[ChatMessage]) -> str:
    result = messages[-1]
    name = _tool_name_for(result.tool_call_id, messages)
    lines = [line.strip() for line in result.content.splitlines() if line.strip()]
    line = _shorten(lines[0] if lines else "(no output)", _SUMMARY_CHARS)
    if line.startswith("Error:"):  # the engine marks failed tool results this way
        reason = line.removeprefix("Error:").strip()
        return f"That did not work ({name}): {reason}" if name else f"That did not work: {reason}"
    return f"Done: {name} → {line}" if name else f"Done: {line}"


def voice_reply(request: ProviderRequest) -> str:
    user_text = next((m.content for m in reversed(request.messages) if m.role == "user"), None)
    parts = ["Hello!"] if user_text is None else []
    if sentence := first_sentence(request.instructions):
        parts.append(sentence)
    if user_text is not None:
        parts.append(f"You said: “{_shorten(' '.join(user_text.split()), 120)}”.")
    if request.tools:
        parts.append("Tools I can call: " + ", ".join(tool.name for tool in request.tools) + ".")
    return " ".join(parts)


def reply_text(request: ProviderRequest) -> str:
    name = request.assistant_name.strip()
    speaker = f"{name} (offline model)" if name else "Offline model"
    if request.messages and request.messages[-1].role == "tool":
        return f"{speaker}: {summarise_tool_result(request.messages)}"
    return f"{speaker}: {voice_reply(request)}"


def split_words(text: str) -> list[str]:
    """Each word with the whitespace after it, so the chunks join back to the text."""
    return re.findall(r"\S+\s*", text)


def count_input_words(request: ProviderRequest) -> int:
    texts = [request.instructions]
    for message in request.messages:
        texts.append(message.content)
        texts.extend(call.arguments for call in message.tool_calls)
    return sum(len(text.split()) for text in texts)


def call_id(request: ProviderRequest, index: int) -> str:
    """Deterministic: the same conversation gets the same id, another one a different id."""
    history = [
        [m.role, m.content, m.tool_call_id, [c.id for c in m.tool_calls]] for m in request.messages
    ]
    digest = hashlib.sha1(json.dumps([request.instructions, history]).encode()).hexdigest()
    return f"call_{digest[:16]}_{index}"


# --- the provider ----------------------------------------------------------------------------


class OfflineProvider:
    name = "offline"
    default_model = "offline"

    def __init__(self, *, delay: float | None = None) -> None:
        self.delay = delay  # seconds between words; None reads OFFLINE_MODEL_DELAY at call time

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        prompt_tokens = count_input_words(request)
        last = request.messages[-1] if request.messages else None
        choice = choose_tool(request.tools, last.content) if last and last.role == "user" else None
        if choice is not None:
            tool, arguments = choice
            text = json.dumps(arguments, ensure_ascii=False)
            yield ToolCallReady(ToolCall(id=call_id(request, 0), name=tool.name, arguments=text))
            yield Usage(prompt_tokens=prompt_tokens, completion_tokens=len(text.split()))
            yield Finished("tool_calls")
            return
        delay = self.delay if self.delay is not None else float(settings.OFFLINE_MODEL_DELAY)
        chunks = split_words(reply_text(request))
        for chunk in chunks:
            if delay > 0:
                await asyncio.sleep(delay)
            yield TextChunk(chunk)
        yield Usage(prompt_tokens=prompt_tokens, completion_tokens=len(chunks))
        yield Finished("stop")
