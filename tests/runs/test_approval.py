"""A person approves consequential tool calls: the run pauses before the turn's calls run,
holding nothing, and goes on when every call is decided — through the Python API here; the
websocket, the browser and the terminal have their own tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from assistants_registry.site_editor.models import Page
from assistants_registry.tools import ToolContext, tool
from chatapp import runs, services
from chatapp.models import ConsultRule, Message, Run, RunStep
from chatapp.providers.scripted import Say
from chatapp.runs import approve, pending, reject, say
from chatapp.runs.engine import execute
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)

sent: list[str] = []


@tool(needs_approval=True)
def send_email(to: str, text: str) -> str:
    """Send an email.

    Args:
        to: The address.
        text: What it says.
    """
    sent.append(to)
    return f"Sent to {to}."


@tool
def lookup(ctx: ToolContext, name: str) -> str:
    """Look a name up.

    Args:
        name: Whom to look up.
    """
    ctx.metadata["looked_up"] = name
    return f"{name} is at {name}@example.com."


@pytest.fixture
def mailer(user, tools):
    sent.clear()
    tools(send_email, lookup)
    bot = assistant("mailer", name="Mailer", tools=["send_email", "lookup"])
    return services.start_thread(bot, user=user)


def email(to="ada@example.com", text="Hello"):
    return ("send_email", {"to": to, "text": text})


def test_a_call_that_needs_approval_pauses_the_run_before_anything_runs(mailer, script):
    model = script(Say("I will send it.", calls=[("lookup", {"name": "ada"}), email()]))
    run = say(mailer, "email ada")
    assert run.status == Run.Status.AWAITING_APPROVAL and run.finished_at is None
    (waiting,) = pending(run)
    assert (waiting.name, waiting.arguments) == (
        "send_email",
        '{"to": "ada@example.com", "text": "Hello"}',
    )
    assert waiting.decision == "pending"
    # Neither call of the turn ran: the lookup waits with it, so the order holds.
    assert sent == [] and not Message.objects.filter(run=run, role="tool").exists()
    mailer.refresh_from_db()
    assert mailer.metadata == {}
    assert len(model.requests) == 1
    with pytest.raises(services.ThreadBusy):  # the thread waits for the decision
        services.send_message(mailer, "something else")


def test_approving_runs_the_calls_and_the_answer_goes_on(mailer, script, user):
    model = script(Say("", calls=[("lookup", {"name": "ada"}), email()]), Say("Sent."))
    run = say(mailer, "email ada")
    run = approve(run, pending(run)[0].call_id)
    assert run.status == Run.Status.COMPLETED
    assert sent == ["ada@example.com"]
    results = [m.content for m in Message.objects.filter(run=run, role="tool").order_by("id")]
    assert results == ["ada is at ada@example.com.", "Sent to ada@example.com."]
    assert model.requests[1].messages[-1].content == "Sent to ada@example.com."
    mailer.refresh_from_db()
    assert mailer.metadata == {"looked_up": "ada"}
    step = run.steps.get(kind=RunStep.Kind.APPROVAL)
    assert step.data["decision"] == "approved" and step.data["by"] == user.username
    assert step.data["decided_at"] and step.finished_at is not None
    assert run.usage["prompt_tokens"] == 20  # both model calls: the pause kept the count
    # The trace stays in order: the message, the approval, then the tool steps.
    kinds = list(run.steps.order_by("index").values_list("kind", flat=True))
    assert kinds == ["message", "approval", "tool_call", "tool_call", "message"]


def test_rejecting_tells_the_model_why_and_the_answer_goes_on(mailer, script):
    model = script(Say("", calls=[email()]), Say("All right, I did not send it."))
    run = say(mailer, "email ada")
    run = reject(run, pending(run)[0].call_id, reason="  not   today ")
    assert run.status == Run.Status.COMPLETED and sent == []
    told = model.requests[1].messages[-1]
    assert told.role == "tool"
    assert told.content == (
        "Error: The user rejected this call to send_email; it was not run. They said: not today"
    )
    step = run.steps.get(kind=RunStep.Kind.APPROVAL)
    assert (step.data["decision"], step.data["reason"]) == ("rejected", "not today")


def test_the_run_waits_until_every_call_of_the_turn_is_decided(mailer, script):
    script(Say("", calls=[email("a@example.com"), email("b@example.com")]), Say("One sent."))
    run = say(mailer, "email both")
    first, second = pending(run)
    run = approve(run, first.call_id)
    assert run.status == Run.Status.AWAITING_APPROVAL and sent == []
    assert [p.call_id for p in pending(run)] == [second.call_id]
    run = reject(run, second.call_id)
    assert run.status == Run.Status.COMPLETED and sent == ["a@example.com"]


def test_a_decision_is_taken_once(mailer, script):
    script(Say("", calls=[email()]), Say("Sent."))
    run = say(mailer, "email ada")
    call_id = pending(run)[0].call_id
    with pytest.raises(runs.DecisionRefused, match="not waiting"):
        approve(run, "no-such-call")
    approve(run, call_id)
    with pytest.raises(runs.DecisionRefused, match="Nothing is waiting"):
        reject(run, call_id)
    assert sent == ["ada@example.com"]


def test_an_assistant_can_be_set_to_ask_before_a_tool(mailer, script):
    mailer.current_assistant.ask_before = ["lookup"]
    mailer.current_assistant.save()
    script(Say("", calls=[("lookup", {"name": "ada"})]), Say("Found."))
    run = say(mailer, "find ada")
    assert [p.name for p in pending(run)] == ["lookup"]
    assert approve(run, pending(run)[0].call_id).status == Run.Status.COMPLETED


def test_stop_ends_a_paused_run_and_the_next_message_works(mailer, script):
    model = script(Say("", calls=[email()]), Say("Hello again."))
    run = say(mailer, "email ada")
    call_id = pending(run)[0].call_id
    assert runs.cancel(run) == services.Cancel.CANCELLED
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and pending(run) == []
    with pytest.raises(runs.DecisionRefused):
        approve(run, call_id)
    assert say(mailer, "hi").status == Run.Status.COMPLETED and sent == []
    # The call that was never decided reaches the model as not run.
    answered = [m for m in model.requests[1].messages if m.role == "tool"]
    assert answered[0].content.startswith("Error: not run")


def test_a_pause_is_never_expired_as_dead(mailer, script, settings):
    script(Say("", calls=[email()]), Say("Sent."))
    run = say(mailer, "email ada")
    long_ago = timezone.now() - timedelta(days=3)
    Run.objects.filter(pk=run.pk).update(created_at=long_ago, heartbeat_at=long_ago)
    assert services.expire_stale_runs() == []
    run = approve(run, pending(run)[0].call_id)
    assert run.status == Run.Status.COMPLETED and sent == ["ada@example.com"]


def test_a_stop_before_the_pause_ends_the_run_as_stopped(mailer, script):
    go_on = asyncio.Event()
    script(Say("Let me send it", calls=[email()], pause=go_on))

    async def scenario():
        _, run = await sync_to_async(services.send_message)(mailer, "email ada")
        seen, started = [], asyncio.Event()

        async def consume():
            async for event in execute(run.pk):
                seen.append(event)
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        await sync_to_async(services.cancel_run)(run)  # the flag only: as from another process
        go_on.set()
        await task
        return run, seen

    run, seen = asyncio.run(scenario())
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert not run.steps.filter(kind=RunStep.Kind.APPROVAL).exists() and sent == []
    assert seen[-1].status == Run.Status.CANCELLED


def test_a_consulted_specialist_cannot_pause_its_call_is_refused(user, tools, script):
    sent.clear()
    tools(send_email)
    writer = assistant("writer", name="Writer")
    helper = assistant("helper", name="Helper", provider="helper-model", tools=["send_email"])
    ConsultRule.objects.create(source=writer, specialist=helper)
    thread = services.start_thread(writer, user=user)
    script(
        Say("", calls=[("ask_helper", {"message_to_assistant": "email ada"})]),
        Say("Helper could not."),
    )
    helper_model = script(Say("", calls=[email()]), Say("I may not."), name="helper-model")
    run = say(thread, "get the helper to email ada")
    assert run.status == Run.Status.COMPLETED and sent == []
    refused = helper_model.requests[1].messages[-1].content
    assert refused == (
        "Error: send_email needs the user's approval, which was not given here: it was not run."
    )


def test_the_site_editor_asks_before_publishing_only(site_editor, user, script):
    from chatapp.models import Assistant

    Assistant.objects.filter(slug="page-editor").update(provider="scripted")
    thread = services.start_thread("page-editor", user=user)
    thread.metadata = {"page_id": "about"}
    thread.save()
    script(Say("", calls=[("update_settings", {"show_in_menu": False})]), Say("Hidden."))
    assert say(thread, "hide it from the menu").status == Run.Status.COMPLETED
    script(Say("", calls=[("update_settings", {"published": False})]), Say("Unpublished."))
    run = say(thread, "unpublish it")
    assert [p.name for p in pending(run)] == ["update_settings"]
    assert Page.objects.get(slug="about").settings["published"] is True
    approve(run, pending(run)[0].call_id)
    assert Page.objects.get(slug="about").settings["published"] is False
