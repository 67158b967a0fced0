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
from chatapp import files, versions
from chatapp.models import Assistant, ConsultRule, HandoffRule, Message, Run, RunStep, Thread
from chatapp.providers.base import ToolCall
from chatapp.runs import turns
from chatapp.runs.records import (
    ApprovalRecord,
    HandoffRecord,
    MessageStepRecord,
    ToolResultRecord,
    ToolStepRecord,
)


class RunNotStartable(Exception):
    """The run is not queued (already started, finished, or cancelled before it began)."""


@dataclass
class Start:
    """A run that has begun: the question it answers and its first turn, in one trip. A run
    resumed after its tool calls were decided has no question to show again, and goes on
    with those calls (`resume`)."""

    run: Run
    question_id: int
    question: str
    client_id: str
    turn: turns.Turn
    resume: turns.Resume | None = None


def begin(run_id: str, watch: tuple[str, ...] = ()) -> Start:
    now = timezone.now()
    startable = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED, cancel_requested=False)
    fresh = startable.filter(started_at__isnull=True).update(
        status=Run.Status.IN_PROGRESS, heartbeat_at=now, started_at=now
    )
    # Not fresh: a run going on after its paused calls were decided (it began before).
    if not fresh and not startable.update(status=Run.Status.IN_PROGRESS, heartbeat_at=now):
        raise RunNotStartable(run_id)
    turn = turns.load_turn(run_id, watch)
    if not fresh and (resume := turns.paused_turn(turn.run)) is not None:
        return Start(turn.run, 0, "", "", turn, resume)
    return Start(turn.run, *turns.question_of(turn.run, turn.history), turn)


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
    """The message's final text and calls, and its step: one transaction, or the caller's
    (end_run writes the answer with the run's end; no savepoint needed)."""
    with transaction.atomic(savepoint=False):
        message.content = content
        message.tool_calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
        message.status = Message.Status.COMPLETE if complete else Message.Status.INCOMPLETE
        message.save(update_fields=["content", "tool_calls", "status"])
        # which version of the assistant spoke: a run may pass through several
        version = versions.latest_key(message.assistant_id)
        record = MessageStepRecord(
            message_id=message.pk,
            tool_calls=len(calls),
            usage=usage,
            version=version[1] if version else None,
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


def pause_for_approval(
    run: Run,
    assistant: Assistant,
    message_id: int,
    calls: list[ToolCall],
    first_index: int,
    usage: dict[str, int],
) -> list[RunStep] | None:
    """Put the calls to the user: an approval step each, and the run paused, together. None
    (nothing written) when a Stop came first: the run ends as stopped instead."""
    with transaction.atomic():
        paused = Run.objects.filter(
            pk=run.pk, status=Run.Status.IN_PROGRESS, cancel_requested=False
        ).update(status=Run.Status.AWAITING_APPROVAL, usage=usage, heartbeat_at=timezone.now())
        if not paused:
            return None
        return [
            RunStep.objects.create(
                run=run,
                index=first_index + offset,
                kind=RunStep.Kind.APPROVAL,
                assistant=assistant,
                data=ApprovalRecord(
                    call_id=call.id,
                    name=call.name,
                    arguments=call.arguments,
                    message_id=message_id,
                ).to_data(),
            )
            for offset, call in enumerate(calls)
        ]


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
    """The tool's message, the files it made and its trace, and on success the metadata it
    wrote: one transaction."""
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
        message = Message.objects.create(
            thread_id=run.thread_id,
            run=run,
            role=Message.Role.TOOL,
            assistant_id=step.assistant_id,
            content=content,
            tool_call_id=call.id,
            data=result.to_data(),
        )
        if outcome.files:  # the model is told what the user now sees
            made = files.store_outputs(run.thread_id, message, outcome.files)
            message.content += f"\n\nFiles shown to the user: {files.described(made)}"
            message.save(update_fields=["content"])
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
        version = versions.latest_key(child.current_assistant_id)
        run = Run.objects.create(
            thread=child,
            assistant_id=child.current_assistant_id,
            assistant_version_id=version and version[0],
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
    last: Message | None,
    text: str,
    step_index: int,
    *,
    complete: bool = False,
) -> None:
    """The run's status, and the message it was writing — its answer, `complete`, or kept
    as far as it got: together."""
    with transaction.atomic():
        if last is not None:
            finish_message(
                run, last, text, [], complete=complete, step_index=step_index, usage=usage
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


class DecisionRefused(Exception):
    """The call cannot be approved or rejected (decided already, or the run is not waiting);
    the text says why in plain words."""


@dataclass
class Decided:
    """A decision recorded: the approval step as it is now, and whether it was the last one
    the run waited for (the run is then queued again, for a face to run)."""

    step: RunStep
    record: ApprovalRecord
    run: Run
    resumed: bool


MAX_REASON_CHARS = 1000


def decide(run_id: Any, call_id: str, *, approved: bool, by: Any, reason: str = "") -> Decided:
    """Record the user's decision on one paused call. When no call of the turn is left
    undecided, the run is queued again, its heartbeat fresh so no sweep mistakes it for dead."""
    reason = " ".join(str(reason or "").split())
    if len(reason) > MAX_REASON_CHARS:
        raise DecisionRefused(f"That reason is too long (the limit is {MAX_REASON_CHARS}).")
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != Run.Status.AWAITING_APPROVAL:
            raise DecisionRefused("Nothing is waiting for approval here any more.")
        steps = list(run.steps.filter(kind=RunStep.Kind.APPROVAL).order_by("index"))
        waiting = [step for step in steps if ApprovalRecord.from_data(step.data).pending]
        step = next(
            (s for s in waiting if ApprovalRecord.from_data(s.data).call_id == call_id), None
        )
        if step is None:
            raise DecisionRefused("That call is not waiting for approval.")
        now = timezone.now()
        record = ApprovalRecord.from_data(step.data).decided(
            approved, by=by, reason=reason, at=now.isoformat()
        )
        step.data, step.finished_at = record.to_data(), now
        step.save(update_fields=["data", "finished_at"])
        resumed = len(waiting) == 1
        if resumed:
            Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED, heartbeat_at=now)
            run.status = Run.Status.QUEUED
    return Decided(step, record, run, resumed)


def pending_approvals(run_id: Any) -> list[tuple[int, ApprovalRecord]]:
    """The calls a paused run waits on (step id, record); none for a run that is not paused."""
    steps = RunStep.objects.filter(
        run_id=run_id, run__status=Run.Status.AWAITING_APPROVAL, kind=RunStep.Kind.APPROVAL
    ).order_by("index")
    found = [(step.pk, ApprovalRecord.from_data(step.data)) for step in steps]
    return [(pk, record) for pk, record in found if record.pending]
