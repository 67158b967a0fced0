"""The thread page: its items (messages, tool steps, consultations, handoffs, errors) read
from the database, and `partial`/`oob`, which render the page template's partials — for the
page itself and for the fragments the websocket sends (fragments.py).

Answers are rendered as Markdown made inert by markdown.py (the template's `markdown`
filter); everything else is autoescaped by the templates.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString

from chatapp.compiled import Compiled
from chatapp.models import Attachment, Message, Run, RunStep, Thread
from chatapp.runs import ApprovalRecord, HandoffRecord, ToolResultRecord, code_argument

THREAD_TEMPLATE = "chat/thread.html"


@dataclass
class ToolStep:
    """One tool call with its result, as the page shows it."""

    key: str  # the step id when live, the call id from history: unique on the page
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False
    result_length: int = 0  # the whole result's length, when only its start is shown
    result_id: int | None = None  # its message, to download the whole result
    files: list[Attachment] = field(default_factory=list)  # what the tool attached

    @property
    def code(self) -> str:
        """A run_python call's code, shown as written."""
        return code_argument(self.arguments)

    @property
    def running(self) -> bool:
        return self.result is None

    def answered(self, result: str, is_error: bool) -> None:
        self.result, self.result_length = shortened(result)
        self.is_error = is_error

    @property
    def question(self) -> str:
        """For a consultation: what was asked."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return self.arguments
        return value.get("message_to_assistant", "") if isinstance(value, dict) else ""


@dataclass
class Approval:
    """A tool call put to the user, as the page shows it: with Approve and Reject while the
    run waits (`waiting`), else with what was decided."""

    step_id: int
    record: ApprovalRecord
    assistant_name: str = ""
    waiting: bool = False

    @property
    def arguments(self) -> str:
        """Indented for reading; as written when they are not JSON."""
        try:
            return json.dumps(json.loads(self.record.arguments or "{}"), indent=2)
        except ValueError:
            return self.record.arguments


@dataclass
class Item:
    kind: str  # "user" | "assistant" | "tool" | "consult" | "handoff" | "approval" | "error"
    message: Message | None = None
    streaming: bool = False
    step: ToolStep | None = None
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    full_length: int = 0  # the whole message's length, when only its start is shown
    approval: Approval | None = None
    files: list[Attachment] = field(default_factory=list)  # sent with a user's message

    def __post_init__(self) -> None:
        if self.message is not None and not self.streaming:
            content, self.full_length = shortened(self.message.content)
            if self.full_length:  # a copy: the message itself keeps its text
                self.message = copy.copy(self.message)
                self.message.content = content


# Runs whose end the page shows as an error under their last message.
SHOWN_ERRORS = (Run.Status.FAILED, Run.Status.INTERRUPTED, Run.Status.EXPIRED)


def shortened(text: str) -> tuple[str, int]:
    """At most CHATAPP_SHOWN_CHARS of a text, and its whole length if it was cut (else 0):
    one huge message must not make a page, or a websocket frame, too big to send."""
    limit = settings.CHATAPP_SHOWN_CHARS
    return (text, 0) if len(text) <= limit else (text[:limit], len(text))


ActiveRun = tuple[Any, str] | None  # the thread's run going (or waiting): its id, its status


@dataclass
class Window:
    """The part of a thread a page shows: its latest messages, within a size budget."""

    items: list[Item]
    earlier: int | None = None  # load the messages before this id to see more
    active: ActiveRun = None  # the thread's run going, as read for these items


def window(thread: Thread, before: int | None = None) -> Window:
    """The latest messages (before `before`) that fit in CHATAPP_PAGE_CHARS, starting at a
    user's message so that no tool call is cut from its result; at least the latest turn."""
    active = active_run(thread.pk)
    budget, taken, size = settings.CHATAPP_PAGE_CHARS, [], 0
    for message in newest_first(thread.pk, before):
        if size >= budget and taken and taken[-1].role == Message.Role.USER:
            items = timeline(thread, taken[::-1], active)
            return Window(items, earlier=taken[-1].pk, active=active)
        taken.append(message)
        size += displayed_size(message)
    return Window(timeline(thread, taken[::-1], active), active=active)


# A page reads its thread on every load, connect and reconnect: these reads are compiled to
# SQL once (chatapp/compiled.py), not built for every page (that was most of a connect's
# CPU). They read by thread, not by the window's lists of runs and messages (a list of
# values would be another query for each length): a thread's failed runs and the calls put
# to its user are few, and its files are read for the window's range of messages.
CHUNK = 100  # messages per read, newest first
THREAD = Message._meta.get_field("thread")
RUN_THREAD = Run._meta.get_field("thread")
MESSAGE_ID = Message._meta.pk

_shown = (  # newest first
    Message.objects.exclude(status=Message.Status.REPLACED)
    .select_related("assistant")
    .order_by("-id")
)
_newest = Compiled(
    lambda thread_id: _shown.filter(thread_id=thread_id)[:CHUNK],
    thread_id=THREAD,
)
_newest_before = Compiled(
    lambda thread_id, before: _shown.filter(thread_id=thread_id, pk__lt=before)[:CHUNK],
    thread_id=THREAD,
    before=MESSAGE_ID,
)
_active_run = Compiled(
    lambda thread_id: (
        Run.objects.filter(thread_id=thread_id, status__in=Run.ACTIVE)
        .order_by()
        .values_list("pk", "status")[:1]
    ),
    thread_id=RUN_THREAD,
)
_failed_runs = Compiled(
    lambda thread_id: (
        Run.objects.filter(thread_id=thread_id, status__in=SHOWN_ERRORS)
        .order_by()
        .values_list("pk", "error")
    ),
    thread_id=RUN_THREAD,
)
_approvals = Compiled(
    lambda thread_id: (
        RunStep.objects.filter(run__thread_id=thread_id, kind=RunStep.Kind.APPROVAL)
        .order_by()
        .values_list("pk", "data")
    ),
    thread_id=RUN_THREAD,
)
_files_between = Compiled(
    lambda thread_id, first, last: Attachment.objects.filter(
        thread_id=thread_id, message_id__gte=first, message_id__lte=last
    ).order_by("created_at"),
    thread_id=Attachment._meta.get_field("thread"),
    first=MESSAGE_ID,
    last=MESSAGE_ID,
)
_thread_files = Compiled(
    lambda thread_id: Attachment.objects.filter(thread_id=thread_id),
    thread_id=Attachment._meta.get_field("thread"),
)


def active_run(thread_id: Any) -> ActiveRun:
    """The thread's run going (or waiting for a decision), if it has one."""
    found = _active_run.list(thread_id=thread_id)
    return (found[0][0], found[0][1]) if found else None


def newest_first(thread_id: Any, before: int | None = None) -> Iterator[Message]:
    """The thread's shown messages (before `before`), newest first, read a chunk at a time,
    each chunk one query with a LIMIT: `.iterator()` would declare a cursor on PostgreSQL,
    outside a transaction one WITH HOLD, which reads the whole thread when it is declared,
    however little of it a page shows."""
    rows = (
        _newest.list(thread_id=thread_id)
        if before is None
        else _newest_before.list(thread_id=thread_id, before=before)
    )
    while rows:
        yield from rows
        if len(rows) < CHUNK:
            return
        rows = _newest_before.list(thread_id=thread_id, before=rows[-1].pk)


def displayed_size(message: Message) -> int:
    """About what a message adds to the page, in characters (markup included)."""
    shown = min(len(message.content), settings.CHATAPP_SHOWN_CHARS)
    calls = sum(len(call.get("arguments", "")) + 300 for call in message.tool_calls)
    return shown + calls + 300


NOT_RUN = "Not run: the answer stopped before this call."


def approvals_of(thread: Thread) -> dict[tuple[int | None, str], tuple[int, ApprovalRecord]]:
    """The calls put to the thread's user, by (message id, call id)."""
    found = {}
    for pk, data in _approvals.list(thread_id=thread.pk):
        record = ApprovalRecord.from_data(data)
        found[(record.message_id, record.call_id)] = (pk, record)
    return found


def timeline(thread: Thread, messages: list[Message], active_one: ActiveRun) -> list[Item]:
    """The page's items for these messages of the thread (in order), in three more queries
    (none for a thread without messages)."""
    if not messages:
        return []
    failed = dict(_failed_runs.list(thread_id=thread.pk))
    active, paused = None, False
    if active_one is not None:
        active, paused = active_one[0], active_one[1] == Run.Status.AWAITING_APPROVAL
    asked = approvals_of(thread)
    attached = files_of(thread, messages)
    results = {m.tool_call_id: m for m in messages if m.role == Message.Role.TOOL}
    items: list[Item] = []
    shown_errors: set[Any] = set()
    for position, message in enumerate(messages):
        if message.role == Message.Role.USER:
            items.append(Item("user", message, files=attached.get(message.pk, [])))
        elif message.role == Message.Role.ASSISTANT:
            streaming = (
                active is not None and message.run_id == active and message.status == "incomplete"
            )
            stopped_silent = message.status == "incomplete" and not message.tool_calls
            if message.content or streaming or stopped_silent:
                items.append(Item("assistant", message, streaming=streaming))
            waiting = paused and message.run_id == active
            for call in message.tool_calls:
                result = results.get(call["id"])
                if (found := asked.get((message.pk, call["id"]))) is not None:
                    step_id, record = found
                    name = message.assistant.name if message.assistant else ""
                    approval = Approval(step_id, record, name, waiting and record.pending)
                    items.append(Item("approval", approval=approval))
                if result is None and waiting:  # runs once every call is decided
                    continue
                step = ToolStep(call["id"], call["name"], call["arguments"])
                kind, extra = "tool", {}
                if result is not None:
                    answer = ToolResultRecord.from_data(result.data)
                    step.answered(result.content, answer.is_error)
                    step.result_id = result.pk
                    step.files = attached.get(result.pk, [])
                    if answer.consult:
                        kind, extra = "consult", {"specialist": answer.specialist}
                elif message.run_id != active:  # the run ended without it
                    step.answered(NOT_RUN, True)
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


def files_of(thread: Thread, messages: list[Message]) -> dict[int, list[Attachment]]:
    """The files sent with (or made for) these messages of the thread (in order), by message
    id: one query."""
    found: dict[int, list[Attachment]] = {}
    if messages:
        first, last = messages[0].pk, messages[-1].pk
        for attachment in _files_between.list(thread_id=thread.pk, first=first, last=last):
            found.setdefault(attachment.message_id, []).append(attachment)
    return found


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


def side_context(thread: Thread) -> dict[str, Any]:
    """What the side panel shows: the thread's facts, its files and the extra panels."""
    return {
        "thread": thread,
        "thread_files": _thread_files.list(thread_id=thread.pk),
        "panels": side_panels(thread),
    }


def thread_context(thread: Thread) -> dict[str, Any]:
    latest = window(thread)
    status = latest.active[1] if latest.active is not None else None
    return {
        "thread": thread,
        "items": latest.items,
        "earlier": latest.earlier,
        "running": status is not None,
        "awaiting": status == Run.Status.AWAITING_APPROVAL,
        # Retry and Edit, for the last exchange, when nothing runs.
        "can_redo": any(item.kind == "user" for item in latest.items),
        **side_context(thread),
    }


def partial(name: str, context: dict[str, Any]) -> str:
    return render_to_string(f"{THREAD_TEMPLATE}#{name}", context)


def oob(name: str, swap: str = "outerHTML", **context: Any) -> str:
    return partial(name, {"oob": swap, **context})
