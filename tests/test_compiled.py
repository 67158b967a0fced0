"""Querysets compiled once (chatapp/compiled.py) give exactly what the plain queryset gives,
for any values, from any thread, compiling only once; a queryset they cannot serve is
refused when it is compiled, not answered wrongly."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoSessions
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chatapp import services
from chatapp.compiled import Compiled
from chatapp.models import Assistant, Message, Run, Thread
from chatapp.runs import turns
from chatapp.sessions import SessionStore as CompiledSessions
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)


def fields_of(instance: Any) -> dict[str, Any]:
    values = {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}
    return {name: (value, type(value)) for name, value in values.items()}


def runs_with_everything(run_id: Any) -> Any:
    return (
        Run.objects.select_related("assistant", "thread__owner", "thread__current_assistant")
        .annotate(
            messages_in_thread=Subquery(
                Message.objects.filter(thread_id=OuterRef("thread_id"))
                .values("thread_id")
                .annotate(n=Count("pk"))
                .values("n")
            ),
            has_answer=Exists(Message.objects.filter(run_id=OuterRef("pk"), role="assistant")),
        )
        .filter(pk=run_id)
    )


@pytest.fixture
def two_threads(user: Any, other_user: Any) -> list[Run]:
    runs = []
    for owner, text in ((user, "first"), (other_user, "second")):
        thread = services.start_thread(assistant(f"a-{text}"), user=owner)
        _, run = services.send_message(thread, f"{text} question")
        Message.objects.create(
            thread=thread, run=run, role="assistant", content=text, data={"kept": [1, text]}
        )
        Run.objects.filter(pk=run.pk).update(usage={"prompt_tokens": 3})
        runs.append(run)
    return runs


def test_the_rows_models_and_related_models_are_the_plain_querysets(two_threads):
    compiled = Compiled(runs_with_everything, run_id=Run._meta.pk)
    for run in two_threads:
        [expected] = runs_with_everything(run.pk)
        [got] = compiled.list(run_id=run.pk)
        assert fields_of(got) == fields_of(expected)  # the converters ran: UUID, dict, datetime
        assert got.usage == {"prompt_tokens": 3}
        assert (got.messages_in_thread, got.has_answer) == (2, True)
        with CaptureQueriesContext(connection) as later:
            related = [got.assistant, got.thread, got.thread.owner, got.thread.current_assistant]
        assert not later.captured_queries  # select_related filled them
        assert [fields_of(r) for r in related] == [
            fields_of(expected.assistant),
            fields_of(expected.thread),
            fields_of(expected.thread.owner),
            fields_of(expected.thread.current_assistant),
        ]


def test_each_call_has_its_own_values_and_nothing_is_found_as_nothing(two_threads):
    compiled = Compiled(
        lambda thread_id: Message.objects.filter(thread_id=thread_id).order_by("id"),
        thread_id=Thread._meta.pk,
    )
    for run in two_threads:
        got = compiled.list(thread_id=run.thread_id)
        assert got == list(Message.objects.filter(thread_id=run.thread_id).order_by("id"))
        assert [m.data for m in got] == [{}, {"kept": [1, got[1].content]}]
    assert compiled.list(thread_id="00000000-0000-0000-0000-000000000000") == []


def test_values_lists_and_slices_too(two_threads):
    compiled = Compiled(
        lambda thread_id: (
            Message.objects.filter(thread_id=thread_id)
            .order_by("-id")
            .values_list("pk", "role")[:1]
        ),
        thread_id=Message._meta.get_field("thread"),
    )
    for run in two_threads:
        expected = list(
            Message.objects.filter(thread_id=run.thread_id)
            .order_by("-id")
            .values_list("pk", "role")[:1]
        )
        assert compiled.list(thread_id=run.thread_id) == expected
        assert expected[0][1] == "assistant"


def test_none_is_the_plain_querysets_is_null(user):
    compiled = Compiled(
        lambda parent_id: Thread.objects.filter(parent_id=parent_id).values_list("pk"),
        parent_id=Thread._meta.get_field("parent"),
    )
    thread = services.start_thread(assistant("solo"), user=user)
    assert compiled.list(parent_id=None) == [(thread.pk,)]


def test_it_is_compiled_once(two_threads, monkeypatch):
    compiled = Compiled(runs_with_everything, run_id=Run._meta.pk)
    compiled.list(run_id=two_threads[0].pk)
    calls = []
    real = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
    )
    for run in two_threads * 3:
        assert compiled.list(run_id=run.pk)[0].pk == run.pk
    assert calls == []


def test_threads_at_once_each_get_their_own_rows(two_threads):
    """The database threads share one compiled query; each runs it on its own connection."""
    compiled = Compiled(runs_with_everything, run_id=Run._meta.pk)
    found: dict[int, list[Any]] = {}
    start = threading.Barrier(4)

    def read(index: int) -> None:
        start.wait(timeout=10)
        run = two_threads[index % 2]
        try:
            found[index] = [compiled.list(run_id=run.pk)[0].pk == run.pk for _ in range(20)]
        finally:
            connection.close()

    workers = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert found == {i: [True] * 20 for i in range(4)}


@pytest.mark.parametrize(
    "build",
    [
        lambda slug: Assistant.objects.all(),  # the value is not in the query at all
        lambda slug: Assistant.objects.filter(slug=slug.upper()),  # changed on its way
    ],
)
def test_a_value_that_is_not_a_parameter_of_its_own_is_refused(db, build):
    compiled = Compiled(build, slug=Assistant._meta.get_field("slug"))
    with pytest.raises(ValueError, match="not parameters of their own"):
        compiled.list(slug="a")


def test_a_turn_reads_what_the_plain_querysets_read(two_threads):
    """The turn's own two compiled reads (chatapp/runs/turns.py)."""
    for run in two_threads:
        turn = turns.load_turn(str(run.pk))
        assert fields_of(turn.run) == fields_of(Run.objects.get(pk=run.pk))
        assert turn.history == list(Message.objects.filter(thread=run.thread_id).order_by("id"))
        with CaptureQueriesContext(connection) as later:
            assert {m.thread for m in turn.history} == {turn.thread}
            assert turn.history[1].assistant is None or turn.history[1].assistant.pk
        assert not later.captured_queries


def test_counts_and_comparisons_are_the_plain_querysets(two_threads, user, other_user):
    """`.count()`, with a datetime compared (the per-minute limit's read)."""
    compiled = Compiled(
        lambda owner_id, since: Message.objects.filter(
            thread__owner_id=owner_id, role="user", created_at__gte=since
        ),
        owner_id=Thread._meta.get_field("owner"),
        since=Message._meta.get_field("created_at"),
    )
    sent = {m.thread.owner_id: m.created_at for m in Message.objects.filter(role="user")}
    for owner in (user, other_user):
        for since in (sent[owner.pk] - timedelta(seconds=1), sent[owner.pk] + timedelta(seconds=1)):
            expected = Message.objects.filter(
                thread__owner_id=owner.pk, role="user", created_at__gte=since
            ).count()
            assert compiled.count(owner_id=owner.pk, since=since) == expected
    assert compiled.count(owner_id=user.pk, since=sent[user.pk]) == 1  # the edge is counted
    assert compiled.count(owner_id=user.pk, since=sent[user.pk] + timedelta(seconds=1)) == 0


def test_the_limits_reads_count_only_the_users_own(two_threads, user, other_user):
    """check_limits' compiled reads (chatapp/services.py): runs and questions of this user."""
    assert services.answers_being_written(user.pk) == 1  # the fixture's run, still queued
    Run.objects.filter(thread__owner=other_user).update(status=Run.Status.COMPLETED)
    assert services.answers_being_written(user.pk) == 1
    assert services.answers_being_written(other_user.pk) == 0
    minute_ago = timezone.now() - timedelta(minutes=1)
    assert services.questions_since.count(owner_id=other_user.pk, since=minute_ago) == 1


@pytest.mark.parametrize("state", ["live", "expired", "missing"])
def test_sessions_load_as_djangos_own_store_loads_them(user, state):
    """chatapp.sessions reads the row through a compiled query: what it loads, and when it
    forgets the key, is what Django's database store does."""
    created = DjangoSessions()
    created["_auth_user_id"] = str(user.pk)
    created.save()
    key = created.session_key if state != "missing" else "n0such5ession0key0at0all00000000"
    if state == "expired":
        Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    ours, djangos = CompiledSessions(key), DjangoSessions(key)
    assert (
        ours.load()
        == djangos.load()
        == ({"_auth_user_id": str(user.pk)} if state == "live" else {})
    )
    assert ours.session_key == djangos.session_key == (key if state == "live" else None)


def test_the_limits_still_lock_the_users_row_where_the_database_can(user):
    """Two messages sent at once count each other on PostgreSQL: the compiled read keeps
    its FOR UPDATE (SQLite has none, and writes one at a time anyway)."""
    with CaptureQueriesContext(connection) as seen, transaction.atomic():
        services.check_limits(user.pk)
    locks = [q["sql"] for q in seen.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(locks) == (1 if connection.features.has_select_for_update else 0)
