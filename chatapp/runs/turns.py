"""What one model call needs, read in a fixed number of queries whatever the thread's length.

Reads only: the run's writes are in store.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, Max, OuterRef, QuerySet, Subquery

from assistants_registry.tools import Permissions
from chatapp.compiled import Compiled
from chatapp.models import (
    Assistant,
    AssistantVersion,
    Attachment,
    ConsultRule,
    HandoffRule,
    Message,
    Run,
    RunStep,
    Thread,
)
from chatapp.providers.base import ToolCall
from chatapp.runs.records import ApprovalRecord


@dataclass
class Turn:
    run: Run
    thread: Thread
    assistant: Assistant
    rules: list[HandoffRule]
    consults: list[ConsultRule]
    history: list[Message]
    stop_requested: bool
    permissions: Permissions  # of the user the run answers: which tools they may use


@dataclass
class Resume:
    """A run going on after the user decided its paused tool calls: the calls of that turn
    (all of them: none ran before the pause), each approval's decision, and where the run's
    steps and token count stood."""

    calls: list[ToolCall]
    decisions: dict[str, ApprovalRecord]  # call id -> the decision
    last_index: int
    usage: dict[str, int] = field(default_factory=dict)


def paused_turn(run: Run) -> Resume | None:
    """The turn a run paused in, if it paused and that turn's calls have not run yet."""
    approvals = [
        ApprovalRecord.from_data(data)
        for data in RunStep.objects.filter(run=run, kind=RunStep.Kind.APPROVAL)
        .order_by("index")
        .values_list("data", flat=True)
    ]
    if not approvals:
        return None
    message_id = approvals[-1].message_id
    message = Message.objects.filter(pk=message_id, run=run).first()
    if message is None:
        return None
    calls = [ToolCall(c["id"], c["name"], c["arguments"]) for c in message.tool_calls]
    answered = Message.objects.filter(
        run=run, role=Message.Role.TOOL, tool_call_id__in=[c.id for c in calls], pk__gt=message.pk
    ).exists()
    if answered:  # resumed before, and went on
        return None
    decisions = {a.call_id: a for a in approvals if a.message_id == message_id}
    last_index = run.steps.aggregate(last=Max("index"))["last"] or 0
    return Resume(calls, decisions, last_index, dict(run.usage or {}))


def question_of(run: Run, history: list[Message]) -> tuple[int, str, str]:
    """The user's message a run answers (id, text, client id), or (0, "", ""): it is in the
    history just loaded."""
    for message in reversed(history):
        if message.role == Message.Role.USER and message.run_id == run.pk:
            return message.pk, message.content, message.client_id or ""
    return 0, "", ""


# Every answer reads its turn before its first word: these two are compiled to SQL once
# (chatapp/compiled.py), not for every turn.
run_of_turn = Compiled(
    lambda run_id: (
        Run.objects.select_related("assistant", "thread__owner", "thread__current_assistant")
        .annotate(
            newest_version=Subquery(newest_version()),
            sent_files=Exists(
                Attachment.objects.filter(thread_id=OuterRef("thread_id"), message__isnull=False)
            ),
        )
        .filter(pk=run_id)
    ),
    run_id=Run._meta.pk,
)

history_of = Compiled(
    lambda thread_id: (
        Message.objects.filter(thread_id=thread_id)
        .exclude(status=Message.Status.REPLACED)
        .select_related("assistant")
        .order_by("id")
    ),
    thread_id=Message._meta.get_field("thread"),
)


def load_turn(run_id: str, watch: tuple[str, ...] = ()) -> Turn:
    """`watch`: the consulting runs above this one, whose Stop stops this one too.

    Two queries for most turns, compiled once: the run with its thread, assistant, owner,
    the newest version (the rules' cache key) and whether the thread holds files sent by the
    user; the history. The rules cost a query when they changed; files and permissions a
    query each only where they exist: a thread with files, an assistant with tools."""
    found = run_of_turn.list(run_id=run_id)
    if not found:
        raise Run.DoesNotExist(run_id)
    run = found[0]
    thread = run.thread
    assistant = thread.current_assistant
    rules, consults = rules_of(assistant, run.newest_version)
    history = history_of.list(thread_id=thread.pk)
    for message in history:
        message.thread = thread  # as `thread.messages` would have set it: no query
    with_sent_files(history, thread, run.sent_files)
    stop = run.cancel_requested or bool(watch and stop_requested(watch))
    # Only an ordinary tool can need a permission (a handoff or a consultation cannot).
    permissions = permissions_of(run) if assistant.tools else Permissions()
    return Turn(run, thread, assistant, rules, consults, history, stop, permissions)


def with_sent_files(history: list[Message], thread: Thread, any_sent: bool) -> None:
    """Each message's files as `message.sent_files`, as a Prefetch with `to_attr` would set
    them: one query, and only in a thread that has some. (Django's prefetching, even of
    `none()`, cost a fifth of reading a turn: README, Performance.)"""
    sent: dict[int, list[Attachment]] = {}
    if any_sent:
        for attachment in Attachment.objects.filter(thread=thread, message__isnull=False):
            sent.setdefault(attachment.message_id, []).append(attachment)
    for message in history:
        message.sent_files = sent.get(message.pk, [])


def permissions_of(run: Run) -> Permissions:
    owner = run.thread.owner
    if not owner.is_active:
        return Permissions()
    if owner.is_superuser:
        return Permissions(everything=True)
    return Permissions(frozenset(owner.get_all_permissions()))


# Assistants and rules change rarely, and every change records a version (versions.py) — of
# the assistant whose rules changed, or of the assistant at their other end — so rules are
# read again only when a newer version exists anywhere: a change is seen in every process.
_rules: dict[tuple[int, Any], tuple[list[HandoffRule], list[ConsultRule]]] = {}


def newest_version() -> QuerySet[AssistantVersion]:
    """The newest version of any assistant (its pk): the rules' cache key. A query to read
    with `.first()`, or to put into the run's query as a subquery."""
    return AssistantVersion.objects.order_by("-pk").values_list("pk", flat=True)[:1]


def rules_of(
    assistant: Assistant, version: int | None
) -> tuple[list[HandoffRule], list[ConsultRule]]:
    """The assistant's enabled handoff and consult rules, in order: what it may do, as of
    `version` (the newest version's pk, `newest_version()`)."""
    key = (assistant.pk, version)
    if key not in _rules:
        if len(_rules) > 10_000:  # old versions are never asked for again
            _rules.clear()
        _rules[key] = read_rules(assistant)
    rules, consults = _rules[key]
    return list(rules), list(consults)


def read_rules(assistant: Assistant) -> tuple[list[HandoffRule], list[ConsultRule]]:
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


def stop_requested(watch: tuple[str, ...]) -> bool:
    return Run.objects.filter(pk__in=watch, cancel_requested=True).exists()


def answer_of(run_id: str) -> tuple[str, str, str]:
    """A consulted run's status, its final answer and its error."""
    run = Run.objects.get(pk=run_id)
    last = (
        run.messages.filter(role=Message.Role.ASSISTANT)
        .exclude(content="")
        .order_by("-id")
        .values_list("content", flat=True)
        .first()
    )
    return run.status, last or "", run.error
