"""The thread's history as the current assistant must see it, and valid for every
OpenAI-compatible server.

Another assistant's words are labelled with its name and its tool steps become short notes,
and a handoff appears as a system note, so the next assistant never mistakes earlier replies
for its own. The history policy of the handoff that brought the assistant in applies. Servers
that render the history through a chat template (vLLM, llama.cpp, Ollama) parse tool-call
arguments as JSON and may refuse two user messages in a row: neither is ever sent.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace

from chatapp import files
from chatapp.models import Assistant, HandoffRule, Message
from chatapp.providers.base import ChatMessage, ToolCall
from chatapp.runs.records import HandoffRecord, ToolResultRecord

NOT_RUN = "Error: not run (the run stopped before this tool finished)."


def last_arrival(history: list[Message], assistant: Assistant) -> Arrival | None:
    """The handoff that made `assistant` the current one, if any."""
    for position in range(len(history) - 1, -1, -1):
        message = history[position]
        if message.role == Message.Role.EVENT and HandoffRecord.is_one(message.data):
            record = HandoffRecord.from_data(message.data)
            return Arrival(position, record) if record.target == assistant.slug else None
    return None


@dataclass(frozen=True)
class Arrival:
    """Where in the history an assistant was handed the thread, and how."""

    position: int
    handoff: HandoffRecord

    @property
    def extra_instructions(self) -> str:
        return self.handoff.extra_instructions


def apply_history_policy(history: list[Message], arrival: Arrival | None) -> list[Message]:
    if arrival is None:
        return history
    before, after = history[: arrival.position], history[arrival.position :]
    policy = arrival.handoff.history
    if policy == HandoffRule.History.NONE:
        return after
    if policy == HandoffRule.History.LAST_N:
        spoken = [
            m for m in before if m.role in (Message.Role.USER, Message.Role.ASSISTANT) and m.content
        ]
        kept = spoken[-arrival.handoff.last_n :] if arrival.handoff.last_n else []
        # Their tool steps are cut away, so their tool calls must not reach the model either.
        return [_without_tool_calls(m) for m in kept] + after
    return history


def _without_tool_calls(message: Message) -> Message:
    trimmed = copy.copy(message)
    trimmed.tool_calls = []
    return trimmed


def history_for(assistant: Assistant, history: list[Message]) -> tuple[ChatMessage, ...]:
    answered = {m.tool_call_id for m in history if m.role == Message.Role.TOOL}
    names = {m.assistant_id: m.assistant.name for m in history if m.assistant_id and m.assistant}
    notes: dict[str, str] = {}  # call id -> why its arguments are shown as {}
    result: list[ChatMessage] = []
    for message in history:
        own = message.assistant_id == assistant.pk
        speaker = names.get(message.assistant_id, "another assistant")
        if message.role == Message.Role.USER:
            result.append(ChatMessage("user", with_files(message)))
        elif message.role == Message.Role.EVENT:
            result.append(ChatMessage("system", message.content))
        elif message.role == Message.Role.ASSISTANT and own:
            calls = []
            for call in message.tool_calls:
                arguments, note = json_object(call["arguments"])
                calls.append(ToolCall(call["id"], call["name"], arguments))
                if note:
                    notes[call["id"]] = note
            if message.content or calls:
                content = said(message)
                result.append(ChatMessage("assistant", content, tool_calls=tuple(calls)))
            # Every call needs a result, or the provider refuses the request.
            result.extend(
                ChatMessage("tool", with_note(NOT_RUN, notes.get(c.id)), tool_call_id=c.id)
                for c in calls
                if c.id not in answered
            )
        elif message.role == Message.Role.ASSISTANT:
            if message.content:
                result.append(
                    ChatMessage("assistant", f"[{speaker}] {said(message)}", name=speaker)
                )
            for call in message.tool_calls:
                result.append(
                    ChatMessage("system", f"{speaker} called {call['name']}({call['arguments']}).")
                )
        elif own:
            content = with_note(message.content, notes.get(message.tool_call_id))
            result.append(ChatMessage("tool", content, tool_call_id=message.tool_call_id))
        else:
            name = ToolResultRecord.from_data(message.data).name or "a tool"
            result.append(ChatMessage("system", f"{speaker}'s {name} returned: {message.content}"))
    return alternating(result)


# --- a history every OpenAI-compatible server accepts -----------------------------------------

INTERRUPTED = "(This answer was interrupted before it was finished.)"


def said(message: Message) -> str:
    """An assistant's words; an answer that was cut short says so, so the model knows."""
    if message.status == Message.Status.INCOMPLETE and message.content:
        return f"{message.content}\n\n{INTERRUPTED}"
    return message.content


def json_object(arguments: str) -> tuple[str, str]:
    """The arguments if they are a JSON object; else "{}" and a note saying what they were."""
    try:
        value = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        return arguments or "{}", ""
    shown = arguments if len(arguments) <= 200 else arguments[:199] + "…"
    return (
        "{}",
        f"(The call's arguments were not a JSON object, so they are shown as {{}}: {shown})",
    )


def with_files(message: Message) -> str:
    """A user's words, and the names of the files sent with them (tools read them by name)."""
    sent = message.sent_files  # read with the turn (turns.with_sent_files)
    if not sent:
        return message.content
    note = f"(Attached: {files.described(sent)})"
    return f"{message.content}\n\n{note}" if message.content else note


def with_note(content: str, note: str | None) -> str:
    return f"{content}\n{note}" if note else content


def alternating(messages: list[ChatMessage]) -> tuple[ChatMessage, ...]:
    """Two user messages in a row (a run that failed before answering) become one; so do
    two assistant messages in a row, the first without tool calls."""
    result: list[ChatMessage] = []
    for message in messages:
        previous = result[-1] if result else None
        if previous is not None and previous.role == message.role == "user":
            result[-1] = replace(previous, content=f"{previous.content}\n\n{message.content}")
        elif (
            previous is not None
            and previous.role == message.role == "assistant"
            and not previous.tool_calls
        ):
            content = "\n\n".join(part for part in (previous.content, message.content) if part)
            result[-1] = replace(message, content=content)
        else:
            result.append(message)
    return tuple(result)
