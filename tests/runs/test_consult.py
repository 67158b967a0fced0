"""Consulting a specialist: child threads, answers as tool results, limits, cancel, the page."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from chatapp import runs, services
from chatapp.models import ConsultRule, Message, Run, RunStep, Thread
from chatapp.providers.scripted import Say
from chatapp.runs import events, say
from chatapp.runs.engine import execute
from chatapp.web import broadcast
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)


def ask(message, **extra):
    return ("ask_critic", {"message_to_assistant": message, **extra})


@pytest.fixture
def writer(user):
    writer = assistant("writer", name="Writer")
    critic = assistant(
        "critic", name="Critic", provider="critic-model", description="Judges drafts."
    )
    ConsultRule.objects.create(source=writer, specialist=critic)
    return services.start_thread(writer, user=user)


def test_the_specialists_answer_is_the_tool_result(writer, script):
    parent_model = script(Say("", calls=[ask("Is 'Fresh daily' good?")]), Say("Critic likes it."))
    critic_model = script(Say("Short and *clear*."), name="critic-model")
    seen = []
    run = say(writer, "write a tagline", on_event=seen.append)
    assert run.status == Run.Status.COMPLETED
    tool_result = parent_model.requests[1].messages[-1]
    assert (tool_result.role, tool_result.content) == ("tool", "Short and *clear*.")
    assert critic_model.requests[0].messages[-1].content == "Is 'Fresh daily' good?"
    assert critic_model.requests[0].assistant_name == "Critic"
    (definition,) = parent_model.requests[0].tools
    assert definition.name == "ask_critic"
    assert definition.description.endswith("Judges drafts.")
    assert definition.parameters["required"] == ["message_to_assistant"]
    step = run.steps.get(kind="consult")
    child = Thread.objects.get(parent=writer)
    assert (child.parent_step_id, child.owner_id) == (step.pk, writer.owner_id)
    assert step.data["child_thread"] == str(child.pk) and step.data["specialist"] == "critic"
    writer.refresh_from_db()
    assert writer.current_assistant.slug == "writer"  # the thread did not move
    nested = [e for e in seen if isinstance(e, events.Nested)]
    assert isinstance(nested[0].event, events.RunStarted) and nested[0].specialist == "Critic"
    assert isinstance(nested[-1].event, events.RunFinished)


def test_previous_messages_are_passed_as_asked(writer, script):
    script(Say("First answer."))
    say(writer, "first question")
    script(Say("", calls=[ask("Judge this.", pass_num_previous_messages=2)]), Say("ok"))
    critic_model = script(Say("Fine."), name="critic-model")
    say(writer, "second question")
    assert critic_model.requests[0].messages[-1].content == (
        "Judge this.\n\nThe conversation so far:\nWriter: First answer.\nUser: second question"
    )


def test_resume_continues_the_same_child_thread(writer, script):
    script(
        Say("", calls=[ask("Draft one?")]),
        Say("ok"),
        Say("", calls=[ask("And draft two?", resume=True)]),
        Say("ok"),
        Say("", calls=[ask("Fresh start?")]),
        Say("ok"),
    )
    critic_model = script(
        Say("One is fine."), Say("Two is better."), Say("New."), name="critic-model"
    )
    say(writer, "one")
    say(writer, "two")
    say(writer, "three")
    children = list(Thread.objects.filter(parent=writer).order_by("created_at"))
    assert len(children) == 2
    assert [m.content for m in critic_model.requests[1].messages] == [
        "Draft one?",
        "One is fine.",
        "And draft two?",
    ]
    assert [m.content for m in critic_model.requests[2].messages] == ["Fresh start?"]


def test_depth_limit(writer, script, settings):
    settings.CHATAPP_MAX_CONSULT_DEPTH = 1
    critic = writer.current_assistant.consult_rules.get().specialist
    ConsultRule.objects.create(
        source=critic, specialist=assistant("editor", provider="critic-model")
    )
    script(Say("", calls=[ask("Check?")]), Say("done"))
    critic_model = script(
        Say("", calls=[("ask_editor", {"message_to_assistant": "?"})]),
        Say("No editor."),
        name="critic-model",
    )
    run = say(writer, "go")
    assert critic_model.requests[0].tools == ()  # not offered at the depth limit
    child_run = Run.objects.get(thread__parent=writer)
    tool = Message.objects.get(run=child_run, role="tool")
    assert tool.content == "Error: Critic has no tool named 'ask_editor'."
    assert run.status == Run.Status.COMPLETED


def test_child_steps_count_against_the_parents_budget(writer, script, tools):
    from tests.runs.test_engine import add

    tools(add)
    writer_assistant = writer.current_assistant
    writer_assistant.max_steps = 3
    writer_assistant.save()
    critic = writer_assistant.consult_rules.get().specialist
    critic.tools = ["add"]
    critic.max_steps = 50
    critic.save()
    script(Say("", calls=[ask("Count forever")]), Say("never"))
    script(*[Say("", calls=[("add", {"a": 1, "b": 1})]) for _ in range(10)], name="critic-model")
    run = say(writer, "go")
    child_run = Run.objects.get(thread__parent=writer)
    assert child_run.status == Run.Status.FAILED
    assert child_run.error == "The step budget of the consulting run is used up."
    assert child_run.steps.filter(kind="message").count() == 2  # 3 minus the writer's own
    assert run.status == Run.Status.FAILED
    assert run.error == "Writer reached its limit of 3 steps in one run."
    consult_step = run.steps.get(kind="consult")
    assert consult_step.data["is_error"] is True
    assert consult_step.data["output"].startswith("Critic could not answer")


async def test_cancelling_the_parent_cancels_the_child(writer, script):
    pause = asyncio.Event()
    script(Say("", calls=[ask("Think long")]), Say("never"))
    script(Say("Thinking very hard", pause=pause), name="critic-model")
    _, run = await sync_to_async(services.send_message)(writer, "go")
    seen = []
    async for event in execute(run.pk):
        seen.append(event)
        if isinstance(event, events.Nested) and isinstance(event.event, events.TextDelta):
            await sync_to_async(runs.cancel)(run)
    await run.arefresh_from_db()
    child_run = await Run.objects.aget(thread__parent=writer)
    assert (run.status, child_run.status) == ("cancelled", "cancelled")
    partial = await Message.objects.aget(run=child_run, role="assistant")
    assert (partial.content, partial.status) == ("Thinking", "incomplete")
    assert seen[-1].status == "cancelled"


async def test_nested_events_reach_the_websocket_in_order(writer, user, script):
    from tests.web.test_consumer import connect, frames_until

    script(Say("", calls=[ask("Is it good?")]), Say("The critic approves."))
    script(Say("Yes, it reads well."), name="critic-model")
    communicator, _ = await connect(writer.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "write"})
    joined = "\n".join(await frames_until(communicator, 'data-running="false"'))
    step = await RunStep.objects.aget(kind="consult")
    child_reply = await Message.objects.aget(thread__parent=writer, role="assistant")
    block, nested = f'id="step-s{step.pk}"', f'id="step-s{step.pk}-nested" hx-swap-oob'
    answer = f'id="step-s{step.pk}-answer" class="consult__answer" hx-swap-oob'
    order = [
        joined.index(block),  # the consultation block, then what happens inside it
        joined.index("Asking Critic…"),
        joined.index(nested),
        joined.index(f'<article id="msg-{child_reply.pk}"'),
        joined.index("Yes, it reads well."),
        joined.index(answer),
        joined.index("The critic approves."),  # the writer carries on
    ]
    assert order == sorted(order)
    await communicator.disconnect()
    await broadcast.wait_for_all()


async def test_child_threads_follow_the_same_access_rules(writer, user, other_user, script, client):
    from tests.web.test_consumer import connect

    script(Say("", calls=[ask("?")]), Say("ok"))
    script(Say("fine"), name="critic-model")
    await sync_to_async(say)(writer, "go")
    child = await Thread.objects.aget(parent=writer)
    owner_socket, connected = await connect(child.pk, user)
    assert connected
    await owner_socket.disconnect()
    _, connected = await connect(child.pk, other_user)
    assert connected is False

    def pages():
        client.force_login(user)
        listing = client.get("/").content.decode()
        own = client.get(f"/threads/{child.pk}/").status_code
        client.force_login(other_user)
        foreign = client.get(f"/threads/{child.pk}/").status_code
        return listing, own, foreign

    listing, own, foreign = await sync_to_async(pages)()
    assert str(writer.pk) in listing and str(child.pk) not in listing
    assert (own, foreign) == (200, 404)


def test_consult_arguments_are_validated(writer, script):
    model = script(Say("", calls=[("ask_critic", {"pass_num_previous_messages": 99})]), Say("ok"))
    say(writer, "go")
    error = model.requests[1].messages[-1].content
    assert error.startswith("Error: Invalid arguments for ask_critic")
    assert "message_to_assistant: Field required" in error
    assert "pass_num_previous_messages: Input should be less than or equal to 20" in error
    assert not Thread.objects.filter(parent=writer).exists()
    assert json.loads(RunStep.objects.get(kind="consult").data["arguments"])


def test_a_reloaded_page_shows_the_consultation(writer, script):
    from chatapp.web.fragments import connect_fragments

    script(Say("", calls=[ask("Is it good?")]), Say("Approved."))
    script(Say("It reads well."), name="critic-model")
    say(writer, "write")
    html = connect_fragments(writer)
    assert "Asked Critic" in html and "Is it good?" in html and "It reads well." in html


def test_tool_names_cannot_clash(writer):
    from django.core.exceptions import ValidationError

    from chatapp.models import HandoffRule

    source = writer.current_assistant
    critic = source.consult_rules.get().specialist
    clash = HandoffRule(source=source, target=critic, tool_name="ask_critic")
    with pytest.raises(ValidationError, match="already has a tool named 'ask_critic'"):
        clash.full_clean()
    with pytest.raises(ValidationError, match="cannot consult itself"):
        ConsultRule(source=source, specialist=source).full_clean()
