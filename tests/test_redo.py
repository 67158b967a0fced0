"""Retry and Edit, below the websocket: what is replaced, what stays (a tool's effect is
real), what the next model call sees, and what staff still see in the admin."""

from __future__ import annotations

import pytest

from assistants_registry.tools import ToolContext, tool
from chatapp import services
from chatapp.models import Message, Run
from chatapp.providers.scripted import Say
from chatapp.runs import execute, say
from chatapp.web.page import window
from tests.admin.support import text, url
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)


@tool
def remember(ctx: ToolContext, fact: str) -> str:
    """Remember a fact.

    Args:
        fact: What to remember.
    """
    ctx.metadata["fact"] = fact
    return "Remembered."


def run_queued(run: Run) -> Run:
    from asgiref.sync import async_to_sync

    async def consume() -> None:
        async for _ in execute(run.pk):
            pass

    async_to_sync(consume)()
    run.refresh_from_db()
    return run


@pytest.fixture
def thread(user, tools):
    tools(remember)
    return services.start_thread(assistant("bot", name="Bot", tools=["remember"]), user=user)


def shown(thread) -> list[str]:
    return [item.message.content for item in window(thread).items if item.message is not None]


def test_retry_answers_the_same_message_again_and_keeps_what_tools_did(thread, script):
    model = script(
        Say("", calls=[("remember", {"fact": "blue"})]),
        Say("Noted: blue."),
        Say("Blue it is."),
    )
    first = say(thread, "my colour is blue")
    retried = run_queued(services.retry_last_answer(thread))
    assert retried.status == Run.Status.COMPLETED and retried.pk != first.pk
    thread.refresh_from_db()
    assert thread.metadata == {"fact": "blue"}  # the replaced turn's tool did its work
    assert shown(thread) == ["my colour is blue", "Blue it is."]
    seen = [(m.role, m.content) for m in model.requests[2].messages if m.role != "system"]
    assert seen == [("user", "my colour is blue")]
    replaced = Message.objects.filter(status=Message.Status.REPLACED)
    assert {m.run_id for m in replaced} == {first.pk}
    assert sorted(replaced.values_list("role", flat=True)) == ["assistant", "assistant", "tool"]
    question = Message.objects.get(role="user")
    assert question.run_id == retried.pk  # the message now belongs to the run answering it


def test_retry_after_a_handoff_runs_the_assistant_the_thread_is_with(user, script):
    front = assistant("front", name="Front")
    back = assistant("back", name="Back")
    rule(front, back)
    thread = services.start_thread(front, user=user)
    script(Say("", calls=[("transfer_to_back", {})]), Say("Back here."), Say("Back again."))
    say(thread, "please pass me on")
    retried = run_queued(services.retry_last_answer(thread))
    assert retried.assistant.slug == "back"
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "back"
    assert shown(thread)[-1] == "Back again."


def test_edit_replaces_the_message_and_its_answer(thread, script):
    model = script(Say("Cats purr."), Say("Dogs bark."))
    say(thread, "tell me about cats")
    message, run = services.edit_last_message(thread, "tell me about dogs", client_id="e1")
    run = run_queued(run)
    assert run.status == Run.Status.COMPLETED and message.client_id == "e1"
    assert shown(thread) == ["tell me about dogs", "Dogs bark."]
    seen = [m.content for m in model.requests[1].messages if m.role != "system"]
    assert seen == ["tell me about dogs"]
    # Sent twice (a dropped socket): stored once.
    assert services.edit_last_message(thread, "tell me about dogs", client_id="e1")[0] == message
    assert Message.objects.filter(role="user").count() == 2


def test_a_failed_answer_can_be_retried(thread, script):
    script(Say("Half", fail="The model server is overloaded."), Say("Whole answer."))
    failed = say(thread, "hello")
    assert failed.status == Run.Status.FAILED
    assert run_queued(services.retry_last_answer(thread)).status == Run.Status.COMPLETED
    assert shown(thread) == ["hello", "Whole answer."]


def test_edit_is_checked_like_a_new_message(thread, script):
    script(Say("Hi."))
    say(thread, "hello")
    with pytest.raises(services.MessageRejected, match="Write a message first"):
        services.edit_last_message(thread, "   ")
    assert not Message.objects.filter(status=Message.Status.REPLACED).exists()


def test_staff_see_the_replaced_turn_in_the_admin(thread, script, admin_client):
    script(Say("First try."), Say("Second try."))
    first = say(thread, "hello")
    run_queued(services.retry_last_answer(thread))
    thread_page = text(admin_client.get(url("thread_change", thread.pk)))
    assert "First try." in thread_page and "Replaced" in thread_page
    run_page = text(admin_client.get(url("run_change", first.pk)))
    assert "replaced: the user retried or edited this turn" in run_page
