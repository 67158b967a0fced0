"""The engine's persistence step: every write a run makes, as small synchronous functions
that the engine calls through `chatapp.db.db`. Nothing here is called per token.

Besides `chatapp.services`, the only writer of threads, messages, runs and steps; what it
writes into `Message.data` and `RunStep.data` are the records of records.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from assistants_registry.tools import ToolOutcome
from chatapp import versions
from chatapp.models import Assistant, ConsultRule, HandoffRule, Message, Run, RunStep, Thread
from chatapp.providers.base import ToolCall
from chatapp.runs import turns
from chatapp.runs.records import (
    HandoffRecord,
    MessageStepRecord,
    ToolResultRecord,
    ToolStepRecord,
)


class RunNotStartable(Exception):
    """The run is not queued (already started, finished, or cancelled before it began)."""


@dataclass
class Start:
    """A run that has begun: the question it answers and its first turn, in one trip."""

    run: Run
    question_id: int
    question: str
    client_id: str
    turn: turns.Turn


def begin(run_id: str, watch: tuple[str, ...] = ()) -> Start:
    now = timezone.now()
    started = Run.objects.filter(
        pk=run_id, status=Run.Status.QUEUED, cancel_requested=False
    ).update(status=Run.Status.IN_PROGRESS, started_at=now, heartbeat_at=now)
    if not started:
        raise RunNotStartable(run_id)
    turn = turns.load_turn(run_id, watch)
    return Start(turn.run, *turns.question_of(run_id), turn)


def start_message(run: Run, assistant: Assistant) -> Message:
    return Message.objects.create(
        thread_id=run.thread_id,
        run=run,
        role=Message.Role.ASSISTANT,
        assistant=assistant,
        status=Message.Status.INCOMPLETE,
    )


def flush(message_id: int, content: str) -> None:
    """Save a streaming message's partial text (the heartbeat says the run is alive)."""
    Message.objects.filter(pk=message_id).update(content=content)


def beat(watch: tuple[str, ...]) -> bool:
    """The run (watch[0]) is alive; True when someone asked to stop it or a run above it."""
    Run.objects.filter(pk__in=watch, status=Run.Status.IN_PROGRESS).update(
        heartbeat_at=timezone.now()
    )
    return turns.stop_requested(watch)


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
        # which version of the assistant spoke: a run may pass through several
        version = versions.latest(message.assistant_id)
        record = MessageStepRecord(
            message_id=message.pk,
            tool_calls=len(calls),
            usage=usage,
            version=version.number if version else None,
        )
        RunStep.objects.create(
            run=run,
            index=step_index,
            kind=RunStep.Kind.MESSAGE,
            started_at=message.created_at,
            assistant_id=message.assistant_id,
            data=record.to_data(),
            finished_at=timezone.now(),
        )


def start_tool_step(
    run: Run, assistant: Assistant, call: ToolCall, index: int, kind: str = "tool"
) -> RunStep:
    record = ToolStepRecord(call_id=call.id, name=call.name, arguments=call.arguments)
    return RunStep.objects.create(
        run=run,
        index=index,
        kind=RunStep.Kind.CONSULT if kind == "consult" else RunStep.Kind.TOOL_CALL,
        assistant=assistant,
        data=record.to_data(),
    )


def record_tool_result(
    step: RunStep, call: ToolCall, outcome: ToolOutcome, metadata_updates: dict[str, Any]
) -> None:
    """The tool's message and trace, and on success the metadata it wrote: one transaction."""
    content = f"Error: {outcome.output}" if outcome.is_error else outcome.output
    called = ToolStepRecord.from_data(step.data)
    result = ToolResultRecord(
        name=call.name,
        is_error=outcome.is_error,
        consult=step.kind == RunStep.Kind.CONSULT,
        specialist=called.specialist_name,
    )
    with transaction.atomic():
        run = step.run
        Message.objects.create(
            thread_id=run.thread_id,
            run=run,
            role=Message.Role.TOOL,
            assistant_id=step.assistant_id,
            content=content,
            tool_call_id=call.id,
            data=result.to_data(),
        )
        if metadata_updates and not outcome.is_error:
            merge_metadata(run.thread_id, metadata_updates)
        finish_step(step, called.answered(outcome.output, outcome.is_error, metadata_updates))


def finish_step(step: RunStep, record: ToolStepRecord) -> None:
    step.data = record.to_data()
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
    record = HandoffRecord(
        source=source.slug,
        source_name=source.name,
        target=target.slug,
        target_name=target.name,
        metadata=updates,
        tool=rule.tool_name,
        trigger=rule.trigger,
        rule_id=rule.pk,
        history=rule.history,
        last_n=rule.history_last_n,
        extra_instructions=extra_instructions,
    )
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=run.thread_id)
        thread.current_assistant = target
        thread.metadata = {**thread.metadata, **updates}
        thread.save(update_fields=["current_assistant", "metadata", "updated_at"])
        if tool_step is not None:  # a tool-triggered handoff answers its own tool call
            called = ToolStepRecord.from_data(tool_step.data)
            Message.objects.create(
                thread=thread,
                run=run,
                role=Message.Role.TOOL,
                assistant=source,
                content=transferred(target),
                tool_call_id=called.call_id,
                data=ToolResultRecord(name=rule.tool_name).to_data(),
            )
            finish_step(tool_step, called.answered(transferred(target), False, updates))
        Message.objects.create(
            thread=thread,
            run=run,
            role=Message.Role.EVENT,
            assistant=target,
            content=record.note,
            data=record.to_data(),
        )
        return RunStep.objects.create(
            run=run,
            index=index,
            kind=RunStep.Kind.HANDOFF,
            assistant=source,
            data=record.to_data(),
            finished_at=timezone.now(),
        )


def transferred(target: Assistant) -> str:
    return f"Transferred to {target.name}."


def open_consultation(
    parent_run: Run, rule: ConsultRule, step: RunStep, *, question: str, resume: bool
) -> Run:
    """The child thread (new, or the previous one when resuming) and its queued run."""
    with transaction.atomic():
        parent = Thread.objects.get(pk=parent_run.thread_id)
        called = ToolStepRecord.from_data(step.data)
        child = None
        if resume:
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
            assistant_version=versions.latest(child.current_assistant_id),
        )
        Message.objects.create(thread=child, run=run, role=Message.Role.USER, content=question)
        step.data = dataclasses.replace(
            called,
            specialist=rule.specialist.slug,
            specialist_name=rule.specialist.name,
            child_thread=str(child.pk),
            child_run=str(run.pk),
            resumed=resumed,
        ).to_data()
        step.save(update_fields=["data"])
    return run


def end_run(
    run: Run,
    status: str,
    error: str,
    usage: dict[str, int],
    detail: str,
    unfinished: Message | None,
    text: str,
    step_index: int,
) -> None:
    """The run's status, and the message it was writing (kept as far as it got): together."""
    with transaction.atomic():
        if unfinished is not None:
            finish_message(
                run, unfinished, text, [], complete=False, step_index=step_index, usage=usage
            )
        now = timezone.now()
        Run.objects.filter(pk=run.pk).update(
            status=status,
            error=error,
            error_detail=detail,
            usage=usage,
            finished_at=now,
            heartbeat_at=now,
        )
        Thread.objects.filter(pk=run.thread_id).update(updated_at=now)
