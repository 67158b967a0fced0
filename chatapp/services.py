"""The writers of threads, messages and runs for what people do — start a thread, post a
message (which queues a run), stop a run, rename or delete a thread — and the expiry of dead
runs. The engine's own writes are in runs/store.py; nothing else writes these rows.

Services know nothing of the engine: `chatapp.runs` runs what they queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chatapp import files, versions
from chatapp.compiled import Compiled
from chatapp.models import Assistant, Message, Run, Thread


class ThreadBusy(Exception):
    """The thread already has an active run; wait for it or stop it."""


class MessageRejected(ValueError):
    """The message cannot be accepted; the text says why."""


class ThreadGone(MessageRejected):
    """The thread was deleted (in another tab, say) before the message arrived."""


def storable(text: str) -> bool:
    """Whether the text can be stored: JSON allows lone surrogates ("\\ud800"), UTF-8 not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise MessageRejected("Write a message first.")
    if not storable(text):
        raise MessageRejected("That message holds characters that are not valid text.")
    text = text.strip()
    limit = settings.CHATAPP_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise MessageRejected(
            f"That message is too long ({len(text)} characters; the limit is {limit})."
        )
    return text


def start_thread(assistant: Assistant | str, *, user: Any, title: str = "") -> Thread:
    """A new thread with `assistant` (an Assistant or its slug) as its first speaker."""
    if isinstance(assistant, str):
        assistant = Assistant.objects.get(slug=assistant)
    return Thread.objects.create(owner=user, current_assistant=assistant, title=title)


def send_message(
    thread: Thread, text: Any, *, client_id: str | None = None, attachments: Sequence[Any] = ()
) -> tuple[Message, Run]:
    """Post the user's message and queue a run to answer it, in one transaction.

    `attachments`: ids of the thread's uploaded files that go with it (chatapp.files); with
    files, the text may be empty. A repeated `client_id` returns the first message and its
    run instead of a second pair; a thread with an active run refuses the message
    (ThreadBusy) and writes nothing.
    """
    return post(thread, text, client_id=client_id, attachments=attachments)


def edit_last_message(
    thread: Thread, text: Any, *, client_id: str | None = None, attachments: Sequence[Any] = ()
) -> tuple[Message, Run]:
    """Replace the user's last message with `text` and answer again: the old message and
    everything after it are kept for the trace as replaced, out of the page and the history.
    What the replaced turn's tools did stays done (its metadata too)."""
    return post(thread, text, client_id=client_id, edit=True, attachments=attachments)


def post(
    thread: Thread,
    text: Any,
    *,
    client_id: str | None = None,
    edit: bool = False,
    attachments: Sequence[Any] = (),
) -> tuple[Message, Run]:
    if isinstance(attachments, str):
        attachments = [attachments]
    if not isinstance(attachments, list | tuple) or len(attachments) > 100:
        raise MessageRejected("attachments must be a list of file ids.")
    text = "" if attachments and isinstance(text, str) and not text.strip() else clean_text(text)
    if client_id is not None and (
        not isinstance(client_id, str) or not 0 < len(client_id) <= 64 or not storable(client_id)
    ):
        raise MessageRejected("client_id must be a string of 1 to 64 characters.")
    try:
        return store_post(thread, text, client_id, edit, attachments)
    except (ThreadBusy, MessageRejected, files.FileRejected) as refused:
        # Checked only when refused, not before every message: a page that sends again what
        # it sent already (it reconnected, say) gets the first message and its run back.
        if client_id and (existing := first_with(thread, client_id)) is not None:
            return existing, existing.run
        # Expired only then, too: a run whose process died must not hold the thread (or
        # count against the user's limit) for ever.
        if isinstance(refused, ThreadBusy | LimitReached) and expire_stale_runs(thread):
            return store_post(thread, text, client_id, edit, attachments)
        raise


def store_post(
    thread: Thread, text: str, client_id: str | None, edit: bool, attachments: Sequence[Any]
) -> tuple[Message, Run]:
    try:
        with transaction.atomic():
            current = locked(thread, "current_assistant_id", "title")
            check_limits(thread.owner_id)
            if edit:
                if (last := last_question(thread)) is None:
                    raise MessageRejected("There is no message to edit yet.")
                replace_from(thread, last.pk)
                if current["title"] == title_from(last.content):  # named after it: rename
                    current["title"] = ""
            run = queue_run(thread, current["current_assistant_id"])
            message = Message.objects.create(
                thread=thread, run=run, role=Message.Role.USER, content=text, client_id=client_id
            )
            sent = files.claim(thread, message, attachments) if attachments else []
            changes: dict[str, Any] = {"updated_at": timezone.now()}
            if not current["title"]:
                changes["title"] = title_from(text or ", ".join(a.name for a in sent))
            Thread.objects.filter(pk=thread.pk).update(**changes)
            for name, value in changes.items():
                setattr(thread, name, value)
    except IntegrityError:  # another active run (or this client id, sent twice at once)
        raise ThreadBusy(BUSY) from None
    return message, run


def first_with(thread: Thread, client_id: str) -> Message | None:
    return thread.messages.filter(client_id=client_id).select_related("run").first()


BUSY = "An answer is still being written; wait for it or press Stop."


def retry_last_answer(thread: Thread) -> Run:
    """Answer the user's last message again, with the thread's current assistant: the last
    answer (and its tool steps and handoffs) is kept for the trace as replaced, out of the
    page and the history. What its tools did stays done (its metadata too)."""
    expire_stale_runs(thread)
    try:
        with transaction.atomic():
            current = locked(thread, "current_assistant_id")
            if thread.runs.filter(status__in=Run.ACTIVE).exists():
                raise ThreadBusy(BUSY)
            if (question := last_question(thread)) is None:
                raise MessageRejected("There is no answer to retry yet.")
            check_limits(thread.owner_id)
            replace_from(thread, question.pk + 1)
            run = queue_run(thread, current["current_assistant_id"])
            # The new run answers the same message: it is the run the message belongs to now.
            Message.objects.filter(pk=question.pk).update(run=run)
            Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
    except IntegrityError:
        raise ThreadBusy(BUSY) from None
    return run


def locked(thread: Thread, *fields: str) -> dict[str, Any]:
    """The thread's `fields` as they are now (a handoff or another tab may have changed
    them), its row locked until the transaction ends; ThreadGone if it was deleted."""
    current = Thread.objects.select_for_update().filter(pk=thread.pk).values(*fields).first()
    if current is None:
        raise ThreadGone("This chat was deleted.")
    return current


def last_question(thread: Thread) -> Message | None:
    return (
        thread.messages.filter(role=Message.Role.USER)
        .exclude(status=Message.Status.REPLACED)
        .order_by("-id")
        .first()
    )


def replace_from(thread: Thread, first_id: int) -> None:
    """Mark the thread's messages from `first_id` on as replaced (kept, no longer shown)."""
    thread.messages.filter(pk__gte=first_id).exclude(status=Message.Status.REPLACED).update(
        status=Message.Status.REPLACED
    )


def queue_run(thread: Thread, assistant_id: Any) -> Run:
    version = versions.latest_key(assistant_id)
    return Run.objects.create(
        thread=thread, assistant_id=assistant_id, assistant_version_id=version and version[0]
    )


class LimitReached(MessageRejected):
    """The user reached one of their limits (settings); the text says which, and until when."""


def check_limits(owner_id: Any) -> None:
    """What one user may do at once, all their threads and pages together.

    Called inside send_message's transaction: locking the user's row makes two messages sent
    at the same moment from two threads count each other (PostgreSQL; SQLite writes one at a
    time anyway). Every message pays these reads before its answer starts: they are compiled
    once (chatapp/compiled.py)."""
    user_row_locked.list(owner_id=owner_id)
    answering = answers_being_written(owner_id)
    if answering >= (limit := settings.CHATAPP_MAX_RUNS_PER_USER):
        raise LimitReached(
            f"{answering} answers are being written for you already (the limit is {limit}); "
            "wait for one to finish."
        )
    minute_ago = timezone.now() - timedelta(minutes=1)
    sent = questions_since.count(owner_id=owner_id, since=minute_ago)
    if sent >= (limit := settings.CHATAPP_MAX_MESSAGES_PER_MINUTE):
        raise LimitReached(f"You sent {sent} messages in the last minute; wait a moment.")
    if budget := settings.CHATAPP_DAILY_TOKENS_PER_USER:
        used = tokens_today(owner_id)
        if used >= budget:
            raise LimitReached(
                f"You have used today's {budget:,} tokens; more are available from midnight (UTC)."
            )


def answers_being_written(owner_id: Any) -> int:
    """The user's runs being written now (consultations are part of the run that asked; a
    run paused for approval costs nothing while it waits)."""
    return working_runs.count(owner_id=owner_id)


OWNER = Thread._meta.get_field("owner")

user_row_locked = Compiled(
    lambda owner_id: (
        get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk")
    ),
    owner_id=OWNER,
)

working_runs = Compiled(
    lambda owner_id: Run.objects.filter(
        thread__owner_id=owner_id, thread__parent__isnull=True, status__in=Run.WORKING
    ),
    owner_id=OWNER,
)

questions_since = Compiled(
    lambda owner_id, since: Message.objects.filter(
        thread__owner_id=owner_id, role=Message.Role.USER, created_at__gte=since
    ),
    owner_id=OWNER,
    since=Message._meta.get_field("created_at"),
)


def tokens_today(owner_id: Any) -> int:
    """Tokens of the user's runs since midnight UTC (consultations included)."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    usages = Run.objects.filter(thread__owner_id=owner_id, created_at__gte=midnight).values_list(
        "usage", flat=True
    )
    return sum(
        int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
        for usage in usages
        if isinstance(usage, dict)
    )


def title_from(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class Cancel(StrEnum):
    CANCELLED = "cancelled"  # it had not started, or nobody was running it: cancelled now
    ASKED = "asked"  # it is running: it stops at its next flush or heartbeat
    NOTHING_RUNNING = "nothing running"


STOPPED = "Stopped."
GIVEN_UP = "The run stopped answering and was given up."


def cancel_run(run: Run) -> Cancel:
    """Stop an active run. The run keeps its partial text.

    A run that has not started, is paused for approval, or whose heartbeat has been silent
    for a third of the expiry (no process is running it), is cancelled at once; a running one
    is asked to stop. Faces
    call `chatapp.runs.cancel`, which also stops a run of this process at once.
    """
    now = timezone.now()
    silent = now - timedelta(seconds=settings.CHATAPP_RUN_EXPIRY / 3)
    not_running = Run.objects.filter(pk=run.pk).filter(
        Q(status=Run.Status.QUEUED)
        | Q(status=Run.Status.IN_PROGRESS, heartbeat_at__lt=silent)
        | Q(status=Run.Status.IN_PROGRESS, heartbeat_at__isnull=True, created_at__lt=silent)
        | Q(status=Run.Status.AWAITING_APPROVAL)  # paused: nobody holds it
    )
    if not_running.update(
        status=Run.Status.CANCELLED, cancel_requested=True, finished_at=now, error=STOPPED
    ):
        return Cancel.CANCELLED
    asked = Run.objects.filter(pk=run.pk, status=Run.Status.IN_PROGRESS).update(
        cancel_requested=True
    )
    return Cancel.ASKED if asked else Cancel.NOTHING_RUNNING


@dataclass(frozen=True)
class Expired:
    run_id: str
    thread_id: str


def stale_runs(cutoff: datetime) -> QuerySet[Run]:
    """Working runs whose heart has not beaten since `cutoff`. A run paused for approval
    holds nothing and beats no heart: it waits as long as it must."""
    return Run.objects.filter(status__in=Run.WORKING, created_at__lt=cutoff).exclude(
        heartbeat_at__gte=cutoff
    )


stale_in_thread = Compiled(
    lambda thread_id, cutoff: stale_runs(cutoff).filter(thread_id=thread_id).values_list("pk")[:1],
    thread_id=Run._meta.get_field("thread"),
    cutoff=Run._meta.get_field("created_at"),
)


def expire_stale_runs(thread: Thread | None = None) -> list[Expired]:
    """Mark active runs whose heartbeat stopped (their process died) as expired; the runs
    expired, so that open pages can be told."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CHATAPP_RUN_EXPIRY)
    stale = stale_runs(cutoff)
    if thread is not None:
        # Every page's connect asks: the usual answer (none), in one compiled query.
        if not stale_in_thread.list(thread_id=thread.pk, cutoff=cutoff):
            return []
        stale = stale.filter(thread=thread)
    elif not stale.exists():  # the usual answer, in one query
        return []
    with transaction.atomic():  # locked and checked again: a run may have beaten meanwhile
        found = list(stale.select_for_update().values_list("pk", "thread_id"))
        Run.objects.filter(pk__in=[pk for pk, _ in found]).update(
            status=Run.Status.EXPIRED, finished_at=now, error=GIVEN_UP
        )
    return [Expired(str(pk), str(thread_id)) for pk, thread_id in found]


class TitleRejected(ValueError):
    """The title cannot be used; the text says why."""


TITLE_MAX_CHARS = Thread._meta.get_field("title").max_length or 200


def rename_thread(thread: Thread, title: Any) -> Thread:
    """Give the thread a title of 1 to TITLE_MAX_CHARS characters (surrounding blanks dropped).

    Renaming is not activity: `updated_at` keeps ordering the list by the last conversation.
    """
    title = title.strip() if isinstance(title, str) else ""
    if not title:
        raise TitleRejected("A title needs at least one character.")
    if len(title) > TITLE_MAX_CHARS:
        raise TitleRejected(
            f"That title is too long ({len(title)} characters; the limit is {TITLE_MAX_CHARS})."
        )
    thread.title = title
    thread.save(update_fields=["title"])
    return thread


def delete_thread(thread: Thread) -> None:
    """Delete the thread with its messages and runs; refused (ThreadBusy) while a run is active,
    because the run would go on writing into a thread that no longer exists."""
    expire_stale_runs(thread)  # a run whose process died must not block deleting for ever
    if thread.runs.filter(status__in=Run.ACTIVE).exists():
        raise ThreadBusy("An answer is still being written; stop it before deleting the chat.")
    thread.delete()
