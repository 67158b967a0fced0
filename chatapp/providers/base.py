"""What every model provider speaks: a request in, a stream of provider events out.

These types are ours, not a vendor's: the engine, the offline model and the tests use them,
and only providers/openai.py translates them to and from the OpenAI wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class ProviderError(Exception):
    """A model call failed. The message is shown to the user as it is: plain words, never a
    URL, a credential or a traceback. `detail` says what happened, for the log and the admin
    (with the server's address, its credentials removed)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model wrote it


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""  # who spoke, for assistant messages of another assistant


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    model: str
    instructions: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolDefinition, ...] = ()
    temperature: float | None = None
    assistant_name: str = ""  # the offline model speaks in this voice; others ignore it
    assistant: str = ""  # the assistant's slug: chatapp.testing scripts each by it


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    """A tool call, fully assembled from the streamed fragments."""

    call: ToolCall
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    type: Literal["usage"] = "usage"


@dataclass(frozen=True, slots=True)
class Progress:
    """The model is sending data that is not text yet (pieces of a tool call): the answer is
    alive. Providers send it at most about once a second, for the run's idle limit."""

    type: Literal["progress"] = "progress"


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of the answer. `reason` is the model's: "stop" and "tool_calls" are an answer
    that is whole; "length", "content_filter" and anything else mean it was cut."""

    reason: str = "stop"
    type: Literal["finished"] = "finished"

    @property
    def cut(self) -> bool:
        return self.reason not in WHOLE


WHOLE = frozenset({"stop", "tool_calls", "function_call"})
ProviderEvent = TextChunk | ToolCallReady | Usage | Progress | Finished


class Provider(Protocol):
    name: str
    default_model: str

    def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        """Stream one model turn. Raise ProviderError with a plain message on failure."""
        ...


@dataclass
class ProviderRegistry:
    """Providers by name. Tests register scripted providers under names of their own, or
    (chatapp.testing) put one `stand_in` for every assistant's model, whatever its name."""

    providers: dict[str, Provider] = field(default_factory=dict)
    stand_in: Provider | None = None

    def register(self, provider: Provider, *, replace: bool = False) -> None:
        if provider.name in self.providers and not replace:
            raise ValueError(f"A provider named {provider.name!r} is already registered.")
        self.providers[provider.name] = provider

    def unregister(self, name: str) -> None:
        self.providers.pop(name, None)

    def get(self, name: str) -> Provider:
        if self.stand_in is not None:
            return self.stand_in
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ProviderError(f"No model provider named {name!r} (known: {known}).") from None
