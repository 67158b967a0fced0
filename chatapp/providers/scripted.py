"""ScriptedProvider: plays back a list of turns, for tests of everything above the model.

provider = ScriptedProvider([
    Say("Let me open it.", calls=[("select_page", {"page": "about"})]),
    Say("Done."),
])
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from chatapp.providers.base import (
    Finished,
    ProviderError,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCall,
    ToolCallReady,
    Usage,
)


@dataclass(frozen=True)
class Say:
    text: str = ""
    calls: Iterable[tuple[str, dict[str, Any] | str]] = ()
    fail: str = ""  # raise ProviderError with this message after the text
    pause: asyncio.Event | None = None  # wait for it after the first word (cancel tests)


@dataclass
class ScriptedProvider:
    turns: list[Say]
    name: str = "scripted"
    default_model: str = "scripted"
    requests: list[ProviderRequest] = field(default_factory=list)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        self.requests.append(request)
        if not self.turns:
            raise ProviderError("The script has no more turns.")
        turn = self.turns.pop(0)
        for position, word in enumerate(turn.text.split(" ")):
            yield TextChunk(word if position == 0 else " " + word)
            if position == 0 and turn.pause is not None:
                await turn.pause.wait()
        if turn.fail:
            raise ProviderError(turn.fail)
        for number, (name, arguments) in enumerate(turn.calls):
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            call_id = f"call_{len(self.requests)}_{number}"
            yield ToolCallReady(ToolCall(call_id, name, text))
        yield Usage(prompt_tokens=10, completion_tokens=len(turn.text.split()))
        yield Finished("tool_calls" if turn.calls else "stop")
