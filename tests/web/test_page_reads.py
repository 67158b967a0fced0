"""What a page reads of its thread on every load, connect and reconnect: compiled to SQL once
(chatapp/compiled.py) and read by thread, with each window of the conversation showing its
own errors, files and decisions, and nothing of another window's or another thread's."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models.sql.compiler import SQLCompiler

from chatapp import services
from chatapp.models import Attachment, Message, Run, RunStep
from chatapp.runs import ApprovalRecord
from chatapp.web.access import owned_thread
from chatapp.web.consumers import ThreadConsumer
from chatapp.web.page import window
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)


def a_turn(thread: Any, bot: Any, turn: int, *, failed: bool) -> None:
    """A question with a file, an answer that called a tool the user was asked about (and
    rejected), and the run's end: failed or completed."""
    status = Run.Status.FAILED if failed else Run.Status.COMPLETED
    run = Run.objects.create(
        thread=thread, assistant=bot, status=status, error=f"Turn {turn} failed." if failed else ""
    )
    question = Message.objects.create(
        thread=thread, run=run, role="user", content=f"Q{turn} " + "q" * 600
    )
    Attachment.objects.create(
        thread=thread,
        message=question,
        name=f"table-{turn}.csv",
        content_type="text/csv",
        size=3,
        file=f"attachments/{thread.pk}/t{turn}",
    )
    call = {"id": f"call-{turn}", "name": "lookup", "arguments": "{}"}
    answer = Message.objects.create(
        thread=thread, run=run, role="assistant", assistant=bot, tool_calls=[call]
    )
    RunStep.objects.create(
        run=run,
        index=0,
        kind=RunStep.Kind.APPROVAL,
        data=ApprovalRecord(
            call_id=call["id"],
            name="lookup",
            message_id=answer.pk,
            decision="rejected",
            reason=f"not in turn {turn}",
        ).to_data(),
    )
    Message.objects.create(
        thread=thread,
        run=run,
        role="tool",
        tool_call_id=call["id"],
        content=f"Rejected in turn {turn}.",
    )


@pytest.fixture
def busy_thread(user: Any, other_user: Any, settings: Any) -> Any:
    """Three turns, each too long to share a window with another; the first one failed. The
    other user's thread beside it has the same things, which this one must never show."""
    settings.CHATAPP_PAGE_CHARS = 500
    bot = assistant("helper", name="Helper")
    for owner in (other_user, user):
        thread = services.start_thread(bot, user=owner)
        for turn in range(3):
            a_turn(thread, bot, turn, failed=turn == 0)
    return thread


def described(items: list[Any]) -> list[str]:
    """A window's items, as words a test can compare."""
    words = []
    for item in items:
        if item.kind == "user":
            names = ",".join(f.name for f in item.files)
            words.append(f"user {item.message.content.split()[0]} files={names}")
        elif item.kind == "approval":
            words.append(f"approval {item.approval.record.reason}")
        elif item.kind == "tool":
            words.append(f"tool {item.step.result}")
        else:
            words.append(f"{item.kind} {item.text}".strip())
    return words


def test_each_window_shows_its_own_errors_files_and_decisions(busy_thread):
    windows, before = [], None
    while True:
        shown = window(busy_thread, before=before)
        windows.append(described(shown.items))
        if shown.earlier is None:
            break
        before = shown.earlier
    assert windows == [
        [f"user Q{turn} files=table-{turn}.csv", f"approval not in turn {turn}"]
        + [f"tool Rejected in turn {turn}."]
        + (["error Turn 0 failed."] if turn == 0 else [])
        for turn in (2, 1, 0)
    ]


def test_a_page_connecting_builds_no_query_after_the_first(busy_thread, user, monkeypatch):
    """Every read of a connect runs SQL compiled once per process: building and compiling
    querysets anew was most of the CPU a connect took (bench/turn_read.py)."""
    page = ThreadConsumer()

    def connect() -> str:
        page.thread = owned_thread(user, busy_thread.pk)
        html, _ = page.current_state(reread=False)
        return html

    connect()  # compiles what this process had not compiled yet
    compiled_anew = []
    real = SQLCompiler.as_sql

    def counting(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        compiled_anew.append(self.query.model.__name__)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    html = connect()
    assert "Q2 " in html and "table-2.csv" in html and "not in turn 2" in html
    assert compiled_anew == []


def test_a_page_reads_only_threads_its_user_owns(busy_thread, user, other_user):
    mine = owned_thread(user, busy_thread.pk)
    assert mine == busy_thread and mine.current_assistant.name == "Helper"
    assert owned_thread(other_user, busy_thread.pk) is None
    assert owned_thread(None, busy_thread.pk) is None
