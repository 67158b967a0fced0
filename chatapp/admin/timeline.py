"""A run's steps as a readable timeline for the Run admin: who spoke and what, each tool
call with its arguments and result, each consultation with the specialist's answer (and a
link to its own run), each handoff with the facts it wrote, each call put to the user with
who approved or rejected it, when, and why.

Loads in a fixed number of queries: the steps (with their assistants), the messages they
point at, and the assistants named by handoffs and consultations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.timezone import localtime

from chatapp.models import Assistant, Attachment, Message, Run, RunStep
from chatapp.runs import (
    ApprovalRecord,
    HandoffRecord,
    MessageStepRecord,
    ToolStepRecord,
    code_argument,
)


@dataclass
class Entry:
    step: RunStep
    kind: str
    title: str
    speaker: str = ""
    text: str = ""
    arguments: str = ""
    result: str = ""
    is_error: bool = False
    metadata: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    duration: str = ""
    link: str = ""  # a consultation's own run
    code: str = ""  # a call whose one argument is code (run_python), as written
    files: list[Attachment] = field(default_factory=list)  # what a tool attached


def pretty_json(value: Any) -> str:
    """Indented JSON; a string holding JSON (tool arguments, some results) is decoded first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
        if not isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, indent=2, ensure_ascii=False)


def key_values(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return []
    return [
        f"{key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for key, value in metadata.items()
    ]


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None or end < start:
        return ""
    return seconds(end - start)


def seconds(delta: timedelta) -> str:
    value = delta.total_seconds()
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def timeline(run: Run) -> list[Entry]:
    steps = list(run.steps.select_related("assistant").order_by("index"))
    message_ids = [
        MessageStepRecord.from_data(s.data).message_id
        for s in steps
        if s.kind == RunStep.Kind.MESSAGE
    ]
    messages = Message.objects.in_bulk([pk for pk in message_ids if pk])
    slugs = set()
    for step in steps:
        if step.kind == RunStep.Kind.HANDOFF:
            handoff = HandoffRecord.from_data(step.data)
            slugs |= {handoff.source, handoff.target}
        elif step.kind == RunStep.Kind.CONSULT:
            slugs.add(ToolStepRecord.from_data(step.data).specialist)
    names = dict(Assistant.objects.filter(slug__in=slugs).values_list("slug", "name"))
    made: dict[str, list[Attachment]] = {}
    for attachment in Attachment.objects.filter(message__run=run).select_related("message"):
        made.setdefault(attachment.message.tool_call_id, []).append(attachment)
    entries = [entry(step, messages, names) for step in steps]
    for item in entries:
        if item.kind == RunStep.Kind.TOOL_CALL:
            item.files = made.get(ToolStepRecord.from_data(item.step.data).call_id, [])
    return entries


def entry(step: RunStep, messages: dict[int, Message], names: dict[str, str]) -> Entry:
    speaker = step.assistant.name if step.assistant else "a deleted assistant"
    item = Entry(
        step,
        step.kind,
        step.get_kind_display(),
        speaker,
        duration=duration(step.started_at, step.finished_at),
    )
    if step.kind == RunStep.Kind.MESSAGE:
        spoke = MessageStepRecord.from_data(step.data)
        message = messages.get(spoke.message_id) if spoke.message_id else None
        item.title = f"{speaker} spoke"
        if message is not None:
            # The step is written when the answer is complete; the message when it began.
            item.duration = duration(message.created_at, step.finished_at)
        item.text = message.content if message else "(the message was deleted)"
        if spoke.usage:
            item.details.append(
                f"tokens: {spoke.usage.get('prompt_tokens', 0)} in, "
                f"{spoke.usage.get('completion_tokens', 0)} out"
            )
        if spoke.tool_calls:
            item.details.append(f"tool calls: {spoke.tool_calls}")
        if spoke.version:
            item.details.append(f"assistant version: v{spoke.version}")
        if message is not None and message.status == Message.Status.INCOMPLETE:
            item.details.append("interrupted")
        if message is not None and message.status == Message.Status.REPLACED:
            item.details.append("replaced: the user retried or edited this turn")
    elif step.kind == RunStep.Kind.TOOL_CALL:
        called = ToolStepRecord.from_data(step.data)
        item.title = f"{speaker} called {called.name or '?'}"
        item.code = code_argument(called.arguments)
        item.arguments = "" if item.code else pretty_json(called.arguments)
        item.result = pretty_json(called.output) if called.output is not None else "(no result)"
        item.is_error = called.is_error
        item.metadata = key_values(called.metadata)
    elif step.kind == RunStep.Kind.HANDOFF:
        handoff = HandoffRecord.from_data(step.data)
        source, target = handoff.source or "?", handoff.target or "?"
        item.title = f"{names.get(source, source)} → {names.get(target, target)}"
        item.duration = ""  # one transaction: a duration would only be noise
        trigger = "after a tool" if handoff.trigger == "after_tool" else "handoff tool"
        item.details.append(f"rule: {handoff.tool or '?'} ({trigger})")
        item.metadata = key_values(handoff.metadata)
    elif step.kind == RunStep.Kind.CONSULT:
        called = ToolStepRecord.from_data(step.data)
        specialist = called.specialist or "?"
        item.title = f"{speaker} asked {names.get(specialist, specialist)} ({called.name or '?'})"
        item.arguments = pretty_json(called.arguments)
        item.result = called.output if called.output is not None else "(no answer)"
        item.is_error = called.is_error
        if called.child_run:
            item.link = reverse("admin:chatapp_run_change", args=[called.child_run])
        if called.resumed:
            item.details.append("resumed the previous consultation")
    elif step.kind == RunStep.Kind.APPROVAL:
        asked = ApprovalRecord.from_data(step.data)
        item.title = f"{speaker} asked the user before calling {asked.name or '?'}"
        item.arguments = pretty_json(asked.arguments)
        item.duration = ""  # a person's time, not the run's
        if asked.pending:
            item.details.append("waiting for the user's decision")
        else:
            item.title += f" — {asked.decision} by {asked.by or '?'}"
            item.is_error = asked.decision == "rejected"
            when = parse_datetime(asked.decided_at) if asked.decided_at else None
            item.details.append(
                f"{asked.decision} by {asked.by or '?'}"
                + (f" on {date_format(localtime(when), 'DATETIME_FORMAT')}" if when else "")
            )
            if asked.reason:
                item.details.append(f"reason: {asked.reason}")
    else:  # a kind added later: show what was recorded
        item.title = f"{speaker}: {step.get_kind_display()}"
        item.arguments = pretty_json(step.data)
    return item
