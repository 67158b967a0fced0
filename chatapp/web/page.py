"""The thread page: its items (messages, tool steps, consultations, handoffs, errors) read
from the database, and `partial`/`oob`, which render the page template's partials — for the
page itself and for the fragments the websocket sends (fragments.py).

Answers are rendered as Markdown made inert by markdown.py (the template's `markdown`
filter); everything else is autoescaped by the templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString

from chatapp.models import Message, Run, Thread
from chatapp.runs import HandoffRecord, ToolResultRecord

THREAD_TEMPLATE = "chat/thread.html"


@dataclass
class ToolStep:
    """One tool call with its result, as the page shows it."""

    key: str  # the step id when live, the call id from history: unique on the page
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False

    @property
    def running(self) -> bool:
        return self.result is None

    @property
    def question(self) -> str:
        """For a consultation: what was asked."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return self.arguments
        return value.get("message_to_assistant", "") if isinstance(value, dict) else ""


@dataclass
class Item:
    kind: str  # "user" | "assistant" | "tool" | "handoff" | "error"
    message: Message | None = None
    streaming: bool = False
    step: ToolStep | None = None
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def timeline(thread: Thread) -> list[Item]:
    """The page's items from the thread's history, in two queries."""
    messages = list(thread.messages.select_related("assistant").order_by("id"))
    failed = {
        run.pk: run.error
        for run in thread.runs.filter(status__in=[Run.Status.FAILED, Run.Status.EXPIRED])
    }
    active = thread.runs.filter(status__in=Run.ACTIVE).values_list("pk", flat=True).first()
    results = {m.tool_call_id: m for m in messages if m.role == Message.Role.TOOL}
    items: list[Item] = []
    shown_errors: set[Any] = set()
    for position, message in enumerate(messages):
        if message.role == Message.Role.USER:
            items.append(Item("user", message))
        elif message.role == Message.Role.ASSISTANT:
            streaming = (
                active is not None and message.run_id == active and message.status == "incomplete"
            )
            stopped_silent = message.status == "incomplete" and not message.tool_calls
            if message.content or streaming or stopped_silent:
                items.append(Item("assistant", message, streaming=streaming))
            for call in message.tool_calls:
                result = results.get(call["id"])
                step = ToolStep(call["id"], call["name"], call["arguments"])
                kind, extra = "tool", {}
                if result is not None:
                    answer = ToolResultRecord.from_data(result.data)
                    step.result, step.is_error = result.content, answer.is_error
                    if answer.consult:
                        kind, extra = "consult", {"specialist": answer.specialist}
                items.append(Item(kind, step=step, extra=extra))
        elif message.role == Message.Role.EVENT and HandoffRecord.is_one(message.data):
            items.append(handoff_item(HandoffRecord.from_data(message.data)))
        last_of_run = (
            position + 1 == len(messages) or messages[position + 1].run_id != message.run_id
        )
        if last_of_run and message.run_id in failed and message.run_id not in shown_errors:
            shown_errors.add(message.run_id)
            items.append(Item("error", text=failed[message.run_id]))
    return items


def handoff_item(handoff: HandoffRecord) -> Item:
    return Item(
        "handoff",
        text=handoff.note,
        extra={
            "source": handoff.source_name or handoff.source,
            "target": handoff.target_name or handoff.target,
            "facts": handoff.facts,
        },
    )


def side_panels(thread: Thread) -> list[SafeString]:
    """Extra panels beside the conversation (the site editor's page preview), from
    settings.CHATAPP_THREAD_PANELS: callables that take the thread and return HTML or ""."""
    panels = []
    for path in settings.CHATAPP_THREAD_PANELS:
        html = import_string(path)(thread)
        if html:
            panels.append(html)
    return panels


def thread_context(thread: Thread) -> dict[str, Any]:
    active = thread.runs.filter(status__in=Run.ACTIVE).exists()
    return {
        "thread": thread,
        "items": timeline(thread),
        "running": active,
        "panels": side_panels(thread),
    }


def partial(name: str, context: dict[str, Any]) -> str:
    return render_to_string(f"{THREAD_TEMPLATE}#{name}", context)


def oob(name: str, swap: str = "outerHTML", **context: Any) -> str:
    return partial(name, {"oob": swap, **context})
