"""The model's input: the current assistant's rendered instructions, its tools, and the
thread's history as *that* assistant must see it (history.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from django.template import Context, Engine

from assistants_registry.registry import Registry
from assistants_registry.tools import Permissions, ToolSpec
from chatapp.models import Assistant, ConsultRule, HandoffRule, Message, Thread
from chatapp.providers.base import ProviderRequest, ToolCall, ToolDefinition
from chatapp.runs import history
from chatapp.runs.consult import ConsultTool, consult_tool
from chatapp.runs.handoffs import HandoffTool, handoff_tool

logger = logging.getLogger(__name__)

# Instructions are plain text for a model, not HTML: no autoescaping.
INSTRUCTIONS_ENGINE = Engine(autoescape=False)


class InstructionsError(Exception):
    """An assistant's instructions (or a rule's extra instructions) do not render."""


@dataclass
class AssistantTools:
    """What the current assistant may call, by name."""

    ordinary: dict[str, ToolSpec] = field(default_factory=dict)
    withheld: dict[str, ToolSpec] = field(default_factory=dict)  # the user lacks the permission
    handoffs: dict[str, HandoffTool] = field(default_factory=dict)
    consults: dict[str, ConsultTool] = field(default_factory=dict)
    after_tool: list[HandoffRule] = field(default_factory=list)
    ask_before: frozenset[str] = frozenset()  # the assistant's own choice, besides the tools'

    def needs_approval(self, call: ToolCall) -> bool:
        """Whether this call waits for the user: one of the assistant's ordinary tools that
        always asks, asks for these arguments, or that the assistant was set to ask about."""
        spec = self.ordinary.get(call.name)
        return spec is not None and (
            call.name in self.ask_before or spec.asks_approval(call.arguments)
        )

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
    permissions: Permissions | None = None,
) -> AssistantTools:
    """What the assistant may call; with `permissions`, only the tools the user may use are
    offered (None: all, for the admin's preview)."""
    tools = AssistantTools(ask_before=frozenset(assistant.ask_before or ()))
    for name in assistant.tools:
        if name in registry:
            spec = registry.get(name)
            if permissions is None or permissions.has(spec.permission):
                tools.ordinary[name] = spec
            else:
                tools.withheld[name] = spec
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
    thread: Thread, assistant: Assistant, messages: list[Message], tools: AssistantTools, model: str
) -> ProviderRequest:
    """`messages`: the thread's whole history, as stored."""
    context = template_context(thread, assistant)
    instructions = render_template(
        assistant.instructions, context, f"instructions of {assistant.name}"
    )
    arrival = history.last_arrival(messages, assistant)
    if arrival is not None and arrival.extra_instructions:
        instructions += "\n\n" + arrival.extra_instructions
    seen = history.apply_history_policy(messages, arrival)
    return ProviderRequest(
        model=model,
        instructions=instructions,
        messages=history.history_for(assistant, seen),
        tools=tools.definitions(),
        temperature=assistant.temperature,
        assistant_name=assistant.name,
        assistant=assistant.slug,
    )
