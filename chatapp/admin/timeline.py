"""A run's steps as a readable timeline for the Run admin: who spoke and what, each tool
call with its arguments and result, each consultation with the specialist's answer (and a
link to its own run), each handoff with the facts it wrote.

Loads in a fixed number of queries: the steps (with their assistants), the messages they
point at, and the assistants named by handoffs and consultations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse

from chatapp.models import Assistant, Message, Run, RunStep


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
    message_ids = [s.data.get("message_id") for s in steps if s.kind == RunStep.Kind.MESSAGE]
    messages = Message.objects.in_bulk([pk for pk in message_ids if pk])
    slugs = {s.data.get(key) for s in steps for key in ("from", "to", "specialist")}
    names = dict(Assistant.objects.filter(slug__in=slugs).values_list("slug", "name"))
    return [entry(step, messages, names) for step in steps]


def entry(step: RunStep, messages: dict[int, Message], names: dict[str, str]) -> Entry:
    data = step.data or {}
    speaker = step.assistant.name if step.assistant else "a deleted assistant"
    item = Entry(
        step,
        step.kind,
        step.get_kind_display(),
        speaker,
        duration=duration(step.started_at, step.finished_at),
    )
    if step.kind == RunStep.Kind.MESSAGE:
        message = messages.get(data.get("message_id"))
        item.title = f"{speaker} spoke"
        if message is not None:
            # The step is written when the answer is complete; the message when it began.
            item.duration = duration(message.created_at, step.finished_at)
        item.text = message.content if message else "(the message was deleted)"
        usage = data.get("usage") or {}
        if usage:
            item.details.append(
                f"tokens: {usage.get('prompt_tokens', 0)} in, "
                f"{usage.get('completion_tokens', 0)} out"
            )
        if data.get("tool_calls"):
            item.details.append(f"tool calls: {data['tool_calls']}")
        if data.get("version"):
            item.details.append(f"assistant version: v{data['version']}")
        if message is not None and message.status == Message.Status.INCOMPLETE:
            item.details.append("interrupted")
    elif step.kind == RunStep.Kind.TOOL_CALL:
        item.title = f"{speaker} called {data.get('name', '?')}"
        item.arguments = pretty_json(data.get("arguments", ""))
        item.result = pretty_json(data["output"]) if "output" in data else "(no result)"
        item.is_error = bool(data.get("is_error"))
        item.metadata = key_values(data.get("metadata"))
    elif step.kind == RunStep.Kind.HANDOFF:
        source, target = data.get("from", "?"), data.get("to", "?")
        item.title = f"{names.get(source, source)} → {names.get(target, target)}"
        item.duration = ""  # one transaction: a duration would only be noise
        trigger = "after a tool" if data.get("trigger") == "after_tool" else "handoff tool"
        item.details.append(f"rule: {data.get('tool', '?')} ({trigger})")
        item.metadata = key_values(data.get("metadata"))
    elif step.kind == RunStep.Kind.CONSULT:
        specialist = data.get("specialist", "?")
        item.title = (
            f"{speaker} asked {names.get(specialist, specialist)} ({data.get('name', '?')})"
        )
        item.arguments = pretty_json(data.get("arguments", ""))
        item.result = data.get("output", "(no answer)")
        item.is_error = bool(data.get("is_error"))
        if data.get("child_run"):
            item.link = reverse("admin:chatapp_run_change", args=[data["child_run"]])
        if data.get("resumed"):
            item.details.append("resumed the previous consultation")
    else:  # a kind added later: show what was recorded
        item.title = f"{speaker}: {step.get_kind_display()}"
        item.arguments = pretty_json(data)
    return item
