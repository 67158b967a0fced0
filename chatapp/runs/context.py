"""The model's input: the current assistant's rendered instructions, its tools, and the
thread's history as *that* assistant must see it.

Another assistant's words are labelled with its name and its tool steps become short notes,
and a handoff appears as a system note, so the next assistant never mistakes earlier replies
for its own. The history policy of the handoff that brought the assistant in applies.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from django.template import Context, Engine

from assistants_registry.registry import Registry
from assistants_registry.tools import ToolSpec
from chatapp.models import Assistant, ConsultRule, HandoffRule, Message, Thread
from chatapp.providers.base import ChatMessage, ProviderRequest, ToolCall, ToolDefinition
from chatapp.runs.consult import ConsultTool, consult_tool
from chatapp.runs.handoffs import HandoffTool, handoff_tool
from chatapp.runs.records import HandoffRecord, ToolResultRecord

logger = logging.getLogger(__name__)

# Instructions are plain text for a model, not HTML: no autoescaping.
INSTRUCTIONS_ENGINE = Engine(autoescape=False)
NOT_RUN = "Error: not run (the run stopped before this tool finished)."


class InstructionsError(Exception):
    """An assistant's instructions (or a rule's extra instructions) do not render."""


@dataclass
class AssistantTools:
    """What the current assistant may call, by name."""

    ordinary: dict[str, ToolSpec] = field(default_factory=dict)
    handoffs: dict[str, HandoffTool] = field(default_factory=dict)
    consults: dict[str, ConsultTool] = field(default_factory=dict)
    after_tool: list[HandoffRule] = field(default_factory=list)

    def kind(self, name: str) -> Literal["tool", "handoff", "consult"]:
        if name in self.handoffs:
            return "handoff"
        return "consult" if name in self.consults else "tool"

    def after(self, tool_name: str) -> HandoffRule | None:
        """The first after-tool rule that fires when `tool_name` succeeds."""
        return next((r for r in self.after_tool if r.after_tool == tool_name), None)

    def definitions(self) -> tuple[ToolDefinition, ...]:
        ordinary = [
            ToolDefinition(s.name, s.description, s.parameters) for s in self.ordinary.values()
        ]
        handoffs = [h.definition for h in self.handoffs.values()]
        consults = [c.definition for c in self.consults.values()]
        return (*ordinary, *consults, *handoffs)


def assistant_tools(
    assistant: Assistant,
    rules: list[HandoffRule],
    registry: Registry,
    consults: list[ConsultRule] = (),  # type: ignore[assignment]
) -> AssistantTools:
    tools = AssistantTools()
    for name in assistant.tools:
        if name in registry:
            tools.ordinary[name] = registry.get(name)
        else:  # configured but not installed here: the model is not offered it
            logger.warning("Assistant %s names an unknown tool %r", assistant.slug, name)
    for rule in rules:
        if rule.trigger == HandoffRule.Trigger.AFTER_TOOL:
            tools.after_tool.append(rule)
        elif rule.tool_name not in tools.ordinary:
            tools.handoffs[rule.tool_name] = handoff_tool(rule)
    for rule in consults:
        if rule.tool_name not in tools.ordinary and rule.tool_name not in tools.handoffs:
            tools.consults[rule.tool_name] = consult_tool(rule)
    return tools


def template_context(thread: Thread, assistant: Assistant) -> dict[str, Any]:
    """Only plain facts go into templates: staff write them, and a model reads the result."""
    owner = thread.owner
    return {
        "thread": {"id": str(thread.pk), "title": thread.title},
        "metadata": thread.metadata,
        "user": {
            "username": owner.get_username(),
            "name": owner.get_full_name() or owner.get_username(),
        },
        "assistant": {
            "slug": assistant.slug,
            "name": assistant.name,
            "description": assistant.description,
        },
    }


def render_template(source: str, context: dict[str, Any], what: str) -> str:
    try:
        return INSTRUCTIONS_ENGINE.from_string(source).render(Context(context)).strip()
    except Exception as exc:  # a syntax error, or a filter failing on this metadata
        raise InstructionsError(f"The {what} could not be rendered: {exc}") from exc


def build_request(
    thread: Thread, assistant: Assistant, history: list[Message], tools: AssistantTools, model: str
) -> ProviderRequest:
    context = template_context(thread, assistant)
    instructions = render_template(
        assistant.instructions, context, f"instructions of {assistant.name}"
    )
    arrival = last_arrival(history, assistant)
    if arrival is not None and arrival.extra_instructions:
        instructions += "\n\n" + arrival.extra_instructions
    return ProviderRequest(
        model=model,
        instructions=instructions,
        messages=history_for(assistant, apply_history_policy(history, arrival)),
        tools=tools.definitions(),
        temperature=assistant.temperature,
        assistant_name=assistant.name,
    )


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
    result: list[ChatMessage] = []
    for message in history:
        own = message.assistant_id == assistant.pk
        speaker = names.get(message.assistant_id, "another assistant")
        if message.role == Message.Role.USER:
            result.append(ChatMessage("user", message.content))
        elif message.role == Message.Role.EVENT:
            result.append(ChatMessage("system", message.content))
        elif message.role == Message.Role.ASSISTANT and own:
            calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in message.tool_calls)
            if message.content or calls:
                result.append(ChatMessage("assistant", message.content, tool_calls=calls))
            # Every call needs a result, or the provider refuses the request.
            result.extend(
                ChatMessage("tool", NOT_RUN, tool_call_id=c.id)
                for c in calls
                if c.id not in answered
            )
        elif message.role == Message.Role.ASSISTANT:
            if message.content:
                result.append(
                    ChatMessage("assistant", f"[{speaker}] {message.content}", name=speaker)
                )
            for call in message.tool_calls:
                result.append(
                    ChatMessage("system", f"{speaker} called {call['name']}({call['arguments']}).")
                )
        elif own:
            result.append(ChatMessage("tool", message.content, tool_call_id=message.tool_call_id))
        else:
            name = ToolResultRecord.from_data(message.data).name or "a tool"
            result.append(ChatMessage("system", f"{speaker}'s {name} returned: {message.content}"))
    return tuple(result)
