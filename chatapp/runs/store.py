"""The engine's persistence step: every write a run makes, as small synchronous functions
that the engine calls through `database_sync_to_async`. Nothing here is called per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from assistants_registry.tools import ToolOutcome
from chatapp.models import (
    Assistant,
    AssistantVersion,
    ConsultRule,
    HandoffRule,
    Message,
    Run,
    RunStep,
    Thread,
)
from chatapp.providers.base import ToolCall
from chatapp.runs.handoffs import describe_metadata


class RunNotStartable(Exception):
    """The run is not queued (already started, finished, or cancelled before it began)."""


@dataclass
class Turn:
    """Everything one model call needs, loaded in a fixed number of queries."""

    run: Run
    thread: Thread
    assistant: Assistant
    rules: list[HandoffRule]
    consults: list[ConsultRule]
    history: list[Message]
    stop_requested: bool


def question_of(run_id: str) -> tuple[int, str]:
    """The user's message a run answers (id, text), or (0, "")."""
    found = (
        Message.objects.filter(run_id=run_id, role=Message.Role.USER)
        .values_list("pk", "content")
        .first()
    )
    return found or (0, "")


def begin(run_id: str) -> Run:
    now = timezone.now()
    started = Run.objects.filter(
        pk=run_id, status=Run.Status.QUEUED, cancel_requested=False
    ).update(status=Run.Status.IN_PROGRESS, started_at=now, heartbeat_at=now)
    if not started:
        raise RunNotStartable(run_id)
    return Run.objects.select_related("assistant").get(pk=run_id)


def load_turn(run_id: str, watch: tuple[str, ...] = ()) -> Turn:
    """`watch`: the consulting runs above this one, whose Stop stops this one too."""
    run = Run.objects.select_related("thread__owner", "thread__current_assistant").get(pk=run_id)
    thread = run.thread
    assistant = thread.current_assistant
    rules, consults = rules_of(assistant)
    history = list(thread.messages.select_related("assistant").order_by("id"))
    stop = run.cancel_requested or bool(watch and stop_requested(watch))
    return Turn(run, thread, assistant, rules, consults, history, stop)


def rules_of(assistant: Assistant) -> tuple[list[HandoffRule], list[ConsultRule]]:
    """The assistant's enabled handoff and consult rules, in order: what it may do."""
    rules = list(
        assistant.handoff_rules.filter(enabled=True)
        .select_related("source", "target")
        .order_by("order", "id")
    )
    consults = list(
        assistant.consult_rules.filter(enabled=True)
        .select_related("source", "specialist")
        .order_by("order", "id")
    )
    return rules, consults


def start_message(run: Run, assistant: Assistant) -> Message:
    return Message.objects.create(
        thread_id=run.thread_id,
        run=run,
        role=Message.Role.ASSISTANT,
        assistant=assistant,
        status=Message.Status.INCOMPLETE,
    )


def flush(watch: tuple[str, ...], message_id: int, content: str) -> bool:
    """Save partial text and the heartbeat of the run (watch[0], then its consulting
    ancestors); True when someone asked to stop any of them."""
    Message.objects.filter(pk=message_id).update(content=content)
    Run.objects.filter(pk__in=watch).update(heartbeat_at=timezone.now())
    return stop_requested(watch)


def beat(run_id: Any) -> None:
    Run.objects.filter(pk=run_id, status=Run.Status.IN_PROGRESS).update(heartbeat_at=timezone.now())


def stop_requested(watch: tuple[str, ...]) -> bool:
    return Run.objects.filter(pk__in=watch, cancel_requested=True).exists()


def finish_message(
    run: Run,
    message: Message,
    content: str,
    calls: list[ToolCall],
    *,
    complete: bool,
    step_index: int,
    usage: dict[str, int],
) -> None:
    with transaction.atomic():
        message.content = content
        message.tool_calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
        message.status = Message.Status.COMPLETE if complete else Message.Status.INCOMPLETE
        message.save(update_fields=["content", "tool_calls", "status"])
        RunStep.objects.create(
            run=run,
            index=step_index,
            kind=RunStep.Kind.MESSAGE,
            started_at=message.created_at,
            assistant_id=message.assistant_id,
            data={
                "message_id": message.pk,
                "tool_calls": len(calls),
                "usage": usage,
                # which version of the assistant spoke: a run may pass through several
                "version": AssistantVersion.objects.filter(assistant_id=message.assistant_id)
                .values_list("number", flat=True)
                .first(),
            },
            finished_at=timezone.now(),
        )


def start_tool_step(
    run: Run, assistant: Assistant, call: ToolCall, index: int, kind: str = "tool"
) -> RunStep:
    return RunStep.objects.create(
        run=run,
        index=index,
        kind=RunStep.Kind.CONSULT if kind == "consult" else RunStep.Kind.TOOL_CALL,
        assistant=assistant,
        data={"call_id": call.id, "name": call.name, "arguments": call.arguments},
    )


def record_tool_result(
    step: RunStep, call: ToolCall, outcome: ToolOutcome, metadata_updates: dict[str, Any]
) -> None:
    """The tool's message and trace, and on success the metadata it wrote: one transaction."""
    content = f"Error: {outcome.output}" if outcome.is_error else outcome.output
    with transaction.atomic():
        run = step.run
        Message.objects.create(
            thread_id=run.thread_id,
            run=run,
            role=Message.Role.TOOL,
            assistant_id=step.assistant_id,
            content=content,
            tool_call_id=call.id,
            data={
                "name": call.name,
                "is_error": outcome.is_error,
                "consult": step.kind == RunStep.Kind.CONSULT,
                "specialist": step.data.get("specialist_name", ""),
            },
        )
        if metadata_updates and not outcome.is_error:
            merge_metadata(run.thread_id, metadata_updates)
        step.data.update(
            output=outcome.output, is_error=outcome.is_error, metadata=metadata_updates
        )
        step.finished_at = timezone.now()
        step.save(update_fields=["data", "finished_at"])


def merge_metadata(thread_id: Any, updates: dict[str, Any]) -> dict[str, Any]:
    thread = Thread.objects.select_for_update().get(pk=thread_id)
    thread.metadata = {**thread.metadata, **updates}
    thread.save(update_fields=["metadata", "updated_at"])
    return thread.metadata


def apply_handoff(
    run: Run,
    rule: HandoffRule,
    updates: dict[str, Any],
    index: int,
    extra_instructions: str,
    tool_step: RunStep | None,
) -> RunStep:
    """Switch the thread's assistant, merge the metadata and record it, all or nothing."""
    source, target = rule.source, rule.target
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=run.thread_id)
        thread.current_assistant = target
        thread.metadata = {**thread.metadata, **updates}
        thread.save(update_fields=["current_assistant", "metadata", "updated_at"])
        if tool_step is not None:  # a tool-triggered handoff answers its own tool call
            Message.objects.create(
                thread=thread,
                run=run,
                role=Message.Role.TOOL,
                assistant=source,
                content=transferred(target),
                tool_call_id=tool_step.data["call_id"],
                data={"name": rule.tool_name, "is_error": False},
            )
            tool_step.data.update(output=transferred(target), is_error=False, metadata=updates)
            tool_step.finished_at = timezone.now()
            tool_step.save(update_fields=["data", "finished_at"])
        note = f"Handed from {source.name} to {target.name}"
        if updates:
            note += f"; {describe_metadata(updates)}"
        Message.objects.create(
            thread=thread,
            run=run,
            role=Message.Role.EVENT,
            assistant=target,
            content=note,
            data={
                "kind": "handoff",
                "source": source.slug,
                "source_name": source.name,
                "target": target.slug,
                "target_name": target.name,
                "metadata": updates,
                "history": rule.history,
                "last_n": rule.history_last_n,
                "extra_instructions": extra_instructions,
            },
        )
        return RunStep.objects.create(
            run=run,
            index=index,
            kind=RunStep.Kind.HANDOFF,
            assistant=source,
            data={
                "rule_id": rule.pk,
                "tool": rule.tool_name,
                "trigger": rule.trigger,
                "from": source.slug,
                "to": target.slug,
                "metadata": updates,
            },
            finished_at=timezone.now(),
        )


def transferred(target: Assistant) -> str:
    return f"Transferred to {target.name}."


def finish_run(run: Run, status: str, error: str, usage: dict[str, int]) -> None:
    now = timezone.now()
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(
            status=status, error=error, usage=usage, finished_at=now, heartbeat_at=now
        )
        Thread.objects.filter(pk=run.thread_id).update(updated_at=now)
