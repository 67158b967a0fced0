"""Consulting a specialist: an assistant used as a tool.

`ask_<slug>` runs the specialist on its own *child thread* (linked to the parent thread and
to the step that asked), with its own tools and rules. Its final answer becomes the tool
result and the parent assistant carries on: the parent thread never changes hands, and the
child has its own lock, so the parent's active run does not block it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistants_registry.tools import ToolError, describe, json_schema
from chatapp.models import ConsultRule, Message
from chatapp.providers.base import ToolDefinition

MAX_PREVIOUS_MESSAGES = 20


class ConsultArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_to_assistant: str = Field(
        min_length=1, description="What to ask, with everything the specialist needs to know."
    )
    pass_num_previous_messages: int = Field(
        0,
        ge=0,
        le=MAX_PREVIOUS_MESSAGES,
        description="How many of this conversation's latest messages to pass along.",
    )
    resume: bool = Field(
        False, description="Continue the previous consultation instead of starting afresh."
    )


SCHEMA = json_schema(ConsultArguments)


@dataclass(frozen=True)
class ConsultTool:
    rule: ConsultRule
    definition: ToolDefinition


def consult_tool(rule: ConsultRule) -> ConsultTool:
    specialist = rule.specialist
    description = (
        rule.description
        or (
            f"Ask {specialist.name} and get the answer back; you keep the conversation. "
            f"{specialist.description}"
        ).strip()
    )
    return ConsultTool(rule, ToolDefinition(rule.tool_name, description, SCHEMA))


def parse(rule: ConsultRule, arguments: str) -> ConsultArguments:
    try:
        return ConsultArguments.model_validate_json(arguments or "{}")
    except ValidationError as exc:
        raise ToolError(f"Invalid arguments for {rule.tool_name}: {describe(exc)}") from None


def question_for(parent_thread_id: str, args: ConsultArguments) -> str:
    """What the specialist is asked: the message, and the latest messages if asked to."""
    count = args.pass_num_previous_messages
    if not count:
        return args.message_to_assistant
    spoken = (
        Message.objects.filter(
            thread_id=parent_thread_id, role__in=[Message.Role.USER, Message.Role.ASSISTANT]
        )
        .exclude(content="")
        .select_related("assistant")
    )
    recent = reversed(list(spoken.order_by("-id")[:count]))
    lines = [
        f"{'User' if m.role == Message.Role.USER else m.assistant.name}: {m.content}"
        for m in recent
    ]
    context = "\n".join(lines)
    return f"{args.message_to_assistant}\n\nThe conversation so far:\n{context}"
