"""Approve / Reject, Retry and Edit over the websocket, against the real ASGI app: what every
open tab of the thread sees, and what is refused while a run is active."""

from __future__ import annotations

import json

import pytest

from assistants_registry.tools import tool
from chatapp import services
from chatapp.models import Message, Run, RunStep
from chatapp.providers.scripted import Say
from chatapp.web import broadcast
from tests.factories import assistant
from tests.web.test_consumer import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)

sent: list[str] = []


@tool(needs_approval=True)
def send_email(to: str) -> str:
    """Send an email.

    Args:
        to: The address.
    """
    sent.append(to)
    return f"Sent to {to}."


@pytest.fixture
def mailer(user, tools):
    sent.clear()
    tools(send_email)
    return services.start_thread(
        assistant("mailer", name="Mailer", tools=["send_email"]), user=user
    )


@pytest.fixture
def thread(user):
    return services.start_thread(assistant("helper", name="Helper"), user=user)


async def two_tabs(thread, user):
    first, _ = await connect(thread.pk, user)
    second, _ = await connect(thread.pk, user)
    await first.receive_from()  # each tab's first frame: the thread as stored
    await second.receive_from()
    return first, second


async def send(tab, **frame):
    await tab.send_to(text_data=json.dumps(frame))


async def paused_call(mailer, user, first, second):
    await send(first, type="message", text="email ada", client_id="c1")
    frames = await frames_until(second, "Waiting for you to approve or reject")
    card = next(f for f in frames if 'class="approval approval--waiting"' in f)
    assert "Mailer wants to run <code>send_email</code>" in card
    assert "&quot;to&quot;: &quot;ada@example.com&quot;" in card
    await frames_until(first, "Waiting for you to approve or reject")
    run = await Run.objects.aget(thread=mailer)
    step = await RunStep.objects.aget(run=run, kind="approval")
    return run, step.data["call_id"]


async def test_approve_in_one_tab_runs_the_call_and_every_tab_sees_it(mailer, user, script):
    script(Say("", calls=[("send_email", {"to": "ada@example.com"})]), Say("Done, sent."))
    first, second = await two_tabs(mailer, user)
    run, call_id = await paused_call(mailer, user, first, second)
    await send(second, type="approve", call_id=call_id)
    for tab in (first, second):
        frames = await frames_until(tab, "Done, sent.")
        joined = "".join(frames)
        assert f"Approved by {user.username}" in joined
        assert "⚙ send_email" in joined and "Sent to ada@example.com." in joined
    await broadcast.wait_for_all()
    await run.arefresh_from_db()
    assert run.status == Run.Status.COMPLETED and sent == ["ada@example.com"]
    for tab in (first, second):
        await tab.disconnect()


async def test_reject_with_a_reason_and_the_answer_goes_on(mailer, user, script):
    model = script(Say("", calls=[("send_email", {"to": "ada@example.com"})]), Say("Not sent."))
    first, second = await two_tabs(mailer, user)
    _, call_id = await paused_call(mailer, user, first, second)
    await send(first, type="reject", call_id=call_id, reason="wrong address")
    frames = await frames_until(second, "Not sent.")
    assert any("Rejected by" in f and "wrong address" in f for f in frames)
    await broadcast.wait_for_all()
    assert sent == []
    assert model.requests[1].messages[-1].content.endswith("They said: wrong address")
    for tab in (first, second):
        await tab.disconnect()


async def test_while_paused_a_message_is_refused_and_stop_ends_the_wait(mailer, user, script):
    script(Say("", calls=[("send_email", {"to": "ada@example.com"})]))
    first, second = await two_tabs(mailer, user)
    run, call_id = await paused_call(mailer, user, first, second)
    await send(first, type="message", text="hello?", client_id="c2")
    assert "An answer is still being written" in await first.receive_from()
    await send(first, type="cancel")
    frames = await frames_until(second, "Not decided: the answer was stopped.")
    assert 'name="type" value="approve"' not in frames[-1]  # no buttons left
    await run.arefresh_from_db()
    assert run.status == Run.Status.CANCELLED
    await send(second, type="approve", call_id=call_id)
    assert "Nothing is waiting for approval" in await second.receive_from()
    assert sent == []
    for tab in (first, second):
        await tab.disconnect()


async def test_a_pause_outlives_the_page_a_new_page_shows_the_buttons(mailer, user, script):
    script(Say("", calls=[("send_email", {"to": "ada@example.com"})]), Say("Sent."))
    first, second = await two_tabs(mailer, user)
    _, call_id = await paused_call(mailer, user, first, second)
    for tab in (first, second):
        await tab.disconnect()
    later, _ = await connect(mailer.pk, user)
    page = await later.receive_from()
    assert 'name="type" value="approve"' in page and "Waiting for you to approve" in page
    await send(later, type="approve", call_id=call_id)
    await frames_until(later, "Sent.")
    await later.disconnect()


async def answered(tabs, text):
    await send(tabs[0], type="message", text=text, client_id=text)
    for tab in tabs:
        await frames_until(tab, "Retry answer")
    await broadcast.wait_for_all()


def refreshed(frames):
    """The frame that shows the whole conversation again."""
    return next(f for f in frames if 'id="messages" class="messages"' in f)


async def test_retry_replaces_the_last_answer_in_every_tab(thread, user, script):
    model = script(Say("First answer."), Say("Second answer."))
    first, second = await two_tabs(thread, user)
    await answered((first, second), "hello")
    await send(second, type="retry")
    for tab in (first, second):
        frames = await frames_until(tab, "Second answer.")
        page = refreshed(frames)
        assert "First answer." not in page and "hello" in page
        assert sum(f.count('class="msg msg--user"') for f in frames) == 1  # not shown twice
    await broadcast.wait_for_all()
    # The model saw the question once, without the replaced answer.
    assert [m.content for m in model.requests[1].messages if m.role != "system"] == ["hello"]
    replaced = await Message.objects.aget(content="First answer.")
    assert replaced.status == Message.Status.REPLACED
    for tab in (first, second):
        await tab.disconnect()


async def test_edit_replaces_the_last_message_and_answers_again(thread, user, script):
    model = script(Say("About cats."), Say("About dogs."))
    first, second = await two_tabs(thread, user)
    await answered((first, second), "tell me about cats")
    await send(first, type="edit", text="tell me about dogs", client_id="e1")
    for tab in (first, second):
        frames = await frames_until(tab, "About dogs.")
        page = refreshed(frames)
        assert "tell me about dogs" in page and 'data-client-id="e1"' in page
        assert "cats" not in page
        assert sum(f.count('class="msg msg--user"') for f in frames) == 1
    await broadcast.wait_for_all()
    asked = [m.content for m in model.requests[1].messages if m.role != "system"]
    assert asked == ["tell me about dogs"]
    for tab in (first, second):
        await tab.disconnect()


async def test_retry_and_edit_are_refused_while_a_run_is_active(mailer, user, script):
    script(Say("", calls=[("send_email", {"to": "ada@example.com"})]))
    first, second = await two_tabs(mailer, user)
    await paused_call(mailer, user, first, second)
    await send(first, type="retry")
    assert "An answer is still being written" in await first.receive_from()
    await send(first, type="edit", text="never mind", client_id="e2")
    assert "An answer is still being written" in await first.receive_from()
    assert not await Message.objects.filter(status=Message.Status.REPLACED).aexists()
    for tab in (first, second):
        await tab.disconnect()


async def test_there_is_nothing_to_retry_or_edit_in_an_empty_thread(thread, user):
    tab, _ = await connect(thread.pk, user)
    page = await tab.receive_from()
    assert "Retry answer" not in page and "Edit last message" not in page
    await send(tab, type="retry")
    assert "There is no answer to retry yet." in await tab.receive_from()
    await send(tab, type="edit", text="x")
    assert "There is no message to edit yet." in await tab.receive_from()
    await tab.disconnect()
