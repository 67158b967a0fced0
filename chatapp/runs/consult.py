"""Consulting a specialist: an assistant used as a tool.

`ask_<slug>` runs the specialist on its own *child thread* (linked to the parent thread and
to the step that asked), with its own tools and rules. Its final answer becomes the tool
result and the parent assistant carries on: the parent thread never changes hands, and the
child has its own lock, so the parent's active run does not block it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistants_registry.tools import ToolError, describe, json_schema
from chatapp.models import AssistantVersion, ConsultRule, Message, Run, RunStep, Thread
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


@dataclass
class Budget:
    """Model calls left for a consulting run and everything it consults, together."""

    remaining: int
    used: int = field(default=0)

    def spend(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        self.used += 1
        return True


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


def open_consultation(
    parent_run: Run, rule: ConsultRule, step: RunStep, args: ConsultArguments
) -> Run:
    """The child thread (new, or the previous one when resuming) and its queued run."""
    with transaction.atomic():
        parent = Thread.objects.get(pk=parent_run.thread_id)
        child = None
        if args.resume:
            child = (
                Thread.objects.filter(parent=parent, runs__assistant=rule.specialist)
                .order_by("-created_at")
                .first()
            )
        resumed = child is not None
        if child is None:
            child = Thread.objects.create(
                owner_id=parent.owner_id,
                parent=parent,
                parent_step=step,
                current_assistant=rule.specialist,
                title=f"{rule.source.name} asks {rule.specialist.name}",
                metadata=dict(parent.metadata),
            )
        run = Run.objects.create(
            thread=child,
            assistant_id=child.current_assistant_id,
            assistant_version=AssistantVersion.objects.filter(
                assistant_id=child.current_assistant_id
            ).first(),
        )
        text = with_previous_messages(parent, args)
        Message.objects.create(thread=child, run=run, role=Message.Role.USER, content=text)
        step.data.update(
            specialist=rule.specialist.slug,
            specialist_name=rule.specialist.name,
            child_thread=str(child.pk),
            child_run=str(run.pk),
            resumed=resumed,
        )
        step.save(update_fields=["data"])
    return run


def with_previous_messages(parent: Thread, args: ConsultArguments) -> str:
    count = args.pass_num_previous_messages
    if not count:
        return args.message_to_assistant
    spoken = parent.messages.filter(role__in=[Message.Role.USER, Message.Role.ASSISTANT]).exclude(
        content=""
    )
    recent = reversed(list(spoken.select_related("assistant").order_by("-id")[:count]))
    lines = [
        f"{'User' if m.role == Message.Role.USER else m.assistant.name}: {m.content}"
        for m in recent
    ]
    context = "\n".join(lines)
    return f"{args.message_to_assistant}\n\nThe conversation so far:\n{context}"


def answer_of(run_id: str) -> tuple[str, str, str]:
    """The child run's status, its final answer and its error."""
    run = Run.objects.get(pk=run_id)
    last = (
        run.messages.filter(role=Message.Role.ASSISTANT)
        .exclude(content="")
        .order_by("-id")
        .values_list("content", flat=True)
        .first()
    )
    return run.status, last or "", run.error
