"""chatapp.testing — a pytest plugin for workflow authors: whole conversations with your
assistants, through the real run loop and database, with no network and no API key.

    from chatapp.testing import call, say

    def test_editing_the_about_page(conversation):
        chat = conversation(
            "welcome", model=[call("select_page", page="about"), say("Which field?")]
        )
        chat.send("I want to edit the about page")
        assert chat.assistant == "page-editor" and chat.metadata["page_id"] == "about"
        assert chat.tool_calls == [("select_page", {"page": "about"})]
        assert chat.handoffs == [("welcome", "page-editor")]
        assert chat.reply == "Which field?"

`model=[...]` scripts the model: each item is one model call, made by whichever assistant
holds the thread (`say(text)`, `call(name, **arguments)`, or `turn(...)` for text and several
calls at once). `models={"critic": [...]}` scripts one assistant's calls by its slug (a
consulted specialist, say). Without a script, the assistants use their own models — the
offline model unless configured otherwise. A script with turns left over, or one that runs
out, fails the test, and a failing test prints its conversation as the terminal chat would.

The plugin is registered by chatapp's package (a `pytest11` entry point): installing chatapp
is enough. Tests that use `conversation` need the database (pytest-django's `db`, given).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatapp.providers.scripted import Say, ScriptedProvider

Turn = Say
Arguments = dict[str, Any]


def say(text: str) -> Turn:
    """A model call that answers with `text`."""
    return Say(text)


def call(name: str, **arguments: Any) -> Turn:
    """A model call that calls one tool (a handoff or a consultation is a tool too)."""
    return Say("", calls=[(name, arguments)])


def turn(text: str = "", *calls: Turn) -> Turn:
    """One model call with text and several tool calls: `turn("Both.", call(...), call(...))`."""
    return Say(text, calls=[made for each in calls for made in each.calls])


def fail(message: str) -> Turn:
    """A model call that fails, as a model server's error would."""
    return Say("", fail=message)


@dataclass
class ScriptedModels:
    """Every assistant's model calls, played from scripts: one per assistant (by slug) that
    has its own, the shared one for the others."""

    shared: list[Turn]
    by_assistant: dict[str, list[Turn]]
    name: str = "chatapp.testing"
    default_model: str = "scripted"
    players: dict[str, ScriptedProvider] = field(default_factory=dict)
    ran_out: list[str] = field(default_factory=list)  # assistants that asked for one more

    def __post_init__(self) -> None:
        self.players = {
            slug: ScriptedProvider(list(turns), name=self.name)
            for slug, turns in self.by_assistant.items()
        }
        self.players[""] = ScriptedProvider(list(self.shared), name=self.name)

    def stream(self, request: Any) -> Any:
        player = self.player(request.assistant)
        if not player.turns:
            self.ran_out.append(request.assistant or "model")
        return player.stream(request)

    def player(self, slug: str) -> ScriptedProvider:
        return self.players.get(slug, self.players[""])

    def left_over(self) -> dict[str, int]:
        return {slug or "model": len(p.turns) for slug, p in self.players.items() if p.turns}


class Conversation:
    """One thread, talked to as a user would, with what the last answer did at hand."""

    def __init__(self, thread: Any, models: ScriptedModels | None) -> None:
        self.thread, self.models = thread, models
        self.run: Any = None
        self.events: list[Any] = []  # of the last answer (every run it took: see approve)
        self.lines: list[str] = []  # the whole conversation, for a failed test's report

    # --- what the user does ---------------------------------------------------------------

    def send(self, text: str, files: Iterable[Any] = ()) -> Any:
        """Post `text` (with `files`: paths, or Django File objects) and run the answer to
        its end (or to a pause for approval)."""
        from chatapp.runs import say as post

        files = list(files)
        names = ", ".join(str(getattr(f, "name", f)).rsplit("/", 1)[-1] for f in files)
        self.lines.append(f"you> {text}" + (f" [attached: {names}]" if files else ""))
        return self.answered(
            lambda on_event: post(self.thread, text, files=files, on_event=on_event)
        )

    def approve(self, call_id: str | None = None) -> Any:
        """Approve the paused call (`call_id`: which one, when several wait)."""
        from chatapp.runs import approve

        waiting = self.waiting(call_id)
        self.lines.append(f"  ? {waiting.name}({waiting.arguments}) approve? y")
        return self.answered(lambda on_event: approve(self.run, waiting.call_id, on_event=on_event))

    def reject(self, reason: str = "", call_id: str | None = None) -> Any:
        from chatapp.runs import reject

        waiting = self.waiting(call_id)
        self.lines.append(f"  ? {waiting.name}({waiting.arguments}) approve? n {reason}".rstrip())
        return self.answered(
            lambda on_event: reject(self.run, waiting.call_id, reason, on_event=on_event)
        )

    def retry(self) -> Any:
        """Answer the last message again (the last answer is replaced)."""
        from chatapp import services

        self.lines.append("(retry)")
        return self.queued(services.retry_last_answer(self.thread))

    def edit(self, text: str) -> Any:
        """Replace the last message with `text` and answer again."""
        from chatapp import services

        self.lines.append(f"you (edited)> {text}")
        return self.queued(services.edit_last_message(self.thread, text)[1])

    # --- what happened ---------------------------------------------------------------------

    @property
    def assistant(self) -> str:
        """The slug of the assistant the thread is with now."""
        self.thread.refresh_from_db(fields=["current_assistant"])
        return self.thread.current_assistant.slug

    @property
    def metadata(self) -> dict[str, Any]:
        self.thread.refresh_from_db(fields=["metadata"])
        return dict(self.thread.metadata)

    @property
    def status(self) -> str:
        return self.run.status if self.run is not None else ""

    @property
    def replies(self) -> list[str]:
        """What the assistants said in the last answer, in order (consultations not included)."""
        from chatapp.runs import events

        return [
            e.content for e in self.events if isinstance(e, events.MessageCompleted) and e.content
        ]

    @property
    def reply(self) -> str:
        """The last thing an assistant said in the last answer ("" if nothing)."""
        return self.replies[-1] if self.replies else ""

    @property
    def tool_calls(self) -> list[tuple[str, Arguments]]:
        """The last answer's tool calls that ran — handoff tools and consultations too — as
        (name, arguments)."""
        from chatapp.runs import events

        return [
            (e.name, parsed(e.arguments)) for e in self.events if isinstance(e, events.ToolCalled)
        ]

    @property
    def tool_results(self) -> list[tuple[str, str, bool]]:
        """(name, output, is_error) of each tool call of the last answer."""
        from chatapp.runs import events

        return [
            (e.name, e.output, e.is_error) for e in self.events if isinstance(e, events.ToolResult)
        ]

    @property
    def files(self) -> list[str]:
        """The names of the thread's files: attached by the user or made by tools."""
        return [a.name for a in self.thread.attachments.order_by("created_at", "name")]

    def file(self, name: str) -> bytes:
        """The bytes of the thread's file called `name`."""
        with self.thread.attachments.get(name=name).file.open("rb") as handle:
            return handle.read()

    @property
    def handoffs(self) -> list[tuple[str, str]]:
        """(from, to) assistant slugs of each handoff of the last answer."""
        from chatapp.runs import events

        return [(e.source, e.target) for e in self.events if isinstance(e, events.Handoff)]

    @property
    def consultations(self) -> list[tuple[str, str]]:
        """(consult tool name, the specialist's answer) of each consultation of the last
        answer."""
        from chatapp.runs import events

        return [
            (e.name, e.output)
            for e in self.events
            if isinstance(e, events.ToolResult) and e.kind == "consult"
        ]

    @property
    def pending(self) -> list[Any]:
        """The calls the last answer waits on (ApprovalRecords: name, arguments, call_id)."""
        from chatapp.runs import pending

        return pending(self.run) if self.run is not None else []

    def transcript(self) -> str:
        return "\n".join(self.lines)

    # --- the machinery -----------------------------------------------------------------------

    def answered(self, act: Callable[[Callable[[Any], None]], Any]) -> Any:
        """Run `act` (which takes an event handler) and keep its events and run."""
        from chatapp import transcript

        self.events = []

        def on_event(event: Any) -> None:
            self.events.append(event)
            if (said := transcript.line(event)) is not None:
                self.lines.append(said)

        self.run = act(on_event)
        return self.run

    def queued(self, run: Any) -> Any:
        from asgiref.sync import async_to_sync

        from chatapp.models import Run
        from chatapp.runs import execute

        async def consume(on_event: Callable[[Any], None]) -> None:
            async for event in execute(run.pk):
                on_event(event)

        def act(on_event: Callable[[Any], None]) -> Any:
            async_to_sync(consume)(on_event)
            return Run.objects.get(pk=run.pk)

        return self.answered(act)

    def waiting(self, call_id: str | None) -> Any:
        waiting = self.pending
        if call_id is not None:
            waiting = [w for w in waiting if w.call_id == call_id]
        if len(waiting) != 1:
            names = ", ".join(f"{w.name} ({w.call_id})" for w in self.pending) or "none"
            raise AssertionError(f"Say which call to decide; waiting: {names}.")
        return waiting[0]


def parsed(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return arguments


# --- the pytest plugin ----------------------------------------------------------------------

CONVERSATIONS = pytest.StashKey[list[Conversation]]()


@pytest.fixture
def conversation(
    request: pytest.FixtureRequest, transactional_db: None
) -> Iterator[Callable[..., Conversation]]:
    """`conversation(first_assistant, model=[...], models={...}, user=None)`: a new thread
    with that assistant (a slug or an Assistant), owned by `user` — by default a superuser,
    who may use every tool (pass a user of your own to test permissions).

    The database is the transactional one: runs do their database work in threads of their
    own, which see only what is committed."""
    from django.contrib.auth import get_user_model

    from chatapp import services
    from chatapp.providers import registry

    started: list[Conversation] = []
    request.node.stash[CONVERSATIONS] = started
    installed: list[ScriptedModels] = []

    def start(
        assistant: Any,
        *,
        model: Iterable[Turn] | None = None,
        models: dict[str, Iterable[Turn]] | None = None,
        user: Any = None,
    ) -> Conversation:
        scripted = None
        if model is not None or models:
            if installed:
                raise AssertionError("One scripted conversation per test: its models are global.")
            scripted = ScriptedModels(
                list(model or ()), {slug: list(t) for slug, t in (models or {}).items()}
            )
            registry.stand_in = scripted
            installed.append(scripted)
        if user is None:
            user, _ = get_user_model().objects.get_or_create(
                username="conversation-user", defaults={"is_superuser": True}
            )
        chat = Conversation(services.start_thread(assistant, user=user), scripted)
        started.append(chat)
        return chat

    yield start
    registry.stand_in = None
    if getattr(request.node, "chatapp_failed", False):  # one failure is enough to read
        return
    for scripted in installed:
        if scripted.ran_out:
            who = ", ".join(dict.fromkeys(scripted.ran_out))
            pytest.fail(f"The script ran out: {who} called the model once more than scripted.")
        if left := scripted.left_over():
            turns = ", ".join(f"{count} for {slug}" for slug, count in left.items())
            pytest.fail(f"The script has model turns that were never used: {turns}.")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that talked to assistants prints its conversations."""
    report = yield
    if report.failed:
        item.chatapp_failed = True  # type: ignore[attr-defined]
        for number, chat in enumerate(item.stash.get(CONVERSATIONS, []), start=1):
            report.sections.append((f"chatapp conversation {number}", chat.transcript()))
    return report
