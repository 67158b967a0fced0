"""Every run ends and keeps what was streamed, whatever the model server does: silence with
keep-alives, an endless trickle, an answer cut by its length limit or a content filter.
Driven through the real OpenAI provider against a fake model server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from chatapp import runs, services
from chatapp.models import Message, Run
from chatapp.providers import registry
from chatapp.providers.openai import OpenAIProvider
from chatapp.runs import Limits, events, execute
from tests.factories import assistant
from tests.fake_model import (
    FakeModel,
    done,
    finish,
    keep_alive_forever,
    sleep,
    text,
    tool_call,
)

pytestmark = pytest.mark.django_db(transaction=True)
FAST = Limits(flush_interval=0.1, model_idle=0.6, model_deadline=30, heartbeat_interval=0.2)


@pytest.fixture
async def fake(user):
    """`await fake(script, ...)`: a fake model server and a thread whose assistant uses it."""
    servers: list[FakeModel] = []

    async def start(*scripts: list):
        model = FakeModel(*scripts)
        await model.start()
        servers.append(model)
        provider = OpenAIProvider(base_url=model.url, api_key="k", max_retries=0, timeout=30)
        provider.name = "fake"
        registry.register(provider, replace=True)
        bot = await sync_to_async(assistant)("bot", name="Bot", provider="fake")
        thread = await sync_to_async(services.start_thread)(bot, user=user)
        return model, thread

    yield start
    registry.unregister("fake")
    for model in servers:
        await model.close()


async def run_to_end(thread, text_: str, limits: Limits = FAST) -> tuple[Run, list]:
    _, run = await sync_to_async(services.send_message)(thread, text_)
    seen = [event async for event in execute(run.pk, limits=limits)]
    await run.arefresh_from_db()
    return run, seen


async def reply_of(run: Run) -> Message:
    return await Message.objects.aget(run=run, role=Message.Role.ASSISTANT)


async def test_keep_alives_do_not_keep_a_silent_model_alive(fake):
    _, thread = await fake([text("Half an ", "answer"), keep_alive_forever(0.05)])
    started = time.monotonic()
    run, seen = await run_to_end(thread, "hi")
    assert time.monotonic() - started < 5
    assert (run.status, run.error) == (
        "failed",
        "The model sent nothing for 0.6 s, so the answer was given up.",
    )
    reply = await reply_of(run)
    assert (reply.content, reply.status) == ("Half an answer", "incomplete")
    assert seen[-1] == events.RunFinished(str(run.pk), "failed", run.error)


async def test_an_endless_trickle_ends_at_the_deadline(fake):
    trickle = [step for _ in range(200) for step in (*text("word "), sleep(0.1))]
    _, thread = await fake(trickle)
    run, _ = await run_to_end(thread, "hi", Limits(model_deadline=1.0, flush_interval=0.1))
    assert run.error == "The model took more than 1 s to answer, so the answer was given up."
    reply = await reply_of(run)
    assert reply.content.startswith("word word") and reply.status == "incomplete"


async def test_partial_text_is_saved_while_the_model_is_silent(fake):
    _, thread = await fake([text("Thinking out loud"), keep_alive_forever(0.05)])
    _, run = await sync_to_async(services.send_message)(thread, "hi")
    limits = Limits(flush_interval=0.1, model_idle=30, heartbeat_interval=0.2)
    reader = asyncio.create_task(drain(execute(run.pk, limits=limits)))
    saved = ""
    for _ in range(50):  # at most 5 s
        await asyncio.sleep(0.1)
        reply = await Message.objects.filter(run=run, role="assistant").afirst()
        if reply is not None and reply.content:
            saved = reply.content
            break
    assert saved == "Thinking out loud"  # saved by the timer: no chunk came after it
    await sync_to_async(runs.cancel)(run)
    await asyncio.wait_for(reader, 5)
    await run.arefresh_from_db()
    assert run.status == "cancelled"


async def drain(stream) -> list:
    return [event async for event in stream]


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("length", "The answer was cut off: the model reached its length limit."),
        ("content_filter", "The answer was cut off by the model's content filter."),
    ],
)
async def test_an_answer_cut_by_the_model_is_kept_and_marked(fake, reason, said):
    _, thread = await fake([text("The beginning of"), finish(reason), done()])
    run, seen = await run_to_end(thread, "hi")
    assert (run.status, run.error) == ("failed", said)
    reply = await reply_of(run)
    assert (reply.content, reply.status) == ("The beginning of", "incomplete")
    completed = next(e for e in seen if isinstance(e, events.MessageCompleted))
    assert completed.status == "incomplete"


async def test_the_tool_calls_of_a_cut_answer_are_not_run(fake, tools):
    model, thread = await fake([tool_call("call_1", "add", '{"a": 1, "b"'), finish("length")])
    run, seen = await run_to_end(thread, "add")
    assert run.status == "failed" and len(model.requests) == 1
    assert not [e for e in seen if isinstance(e, events.ToolCalled)]


# --- the history sent next time is one every OpenAI-compatible server accepts ---------------


def wire_messages(model: FakeModel, index: int) -> list[dict]:
    return [m for m in model.requests[index]["messages"] if m["role"] != "system"]


async def test_malformed_arguments_are_replayed_as_an_empty_object_with_a_note(fake, tools):
    from tests.runs.test_engine import add

    tools(add)
    model, thread = await fake(
        [tool_call("call_1", "add", '{"a": 1, "b"'), finish("tool_calls"), done()],
        [text("Sorry."), finish(), done()],
    )
    await sync_to_async(
        type(thread.current_assistant).objects.filter(pk=thread.current_assistant_id).update
    )(tools=["add"])
    run, _ = await run_to_end(thread, "add one and two")
    assert run.status == "completed"
    call, result = wire_messages(model, 1)[1:3]
    assert call["tool_calls"][0]["function"]["arguments"] == "{}"
    assert result["content"].startswith("Error: Invalid arguments for add")
    assert result["content"].endswith(
        """(The call's arguments were not a JSON object, so they are shown as {}: {"a": 1, "b")"""
    )


async def test_a_failed_run_leaves_no_two_user_messages_in_a_row(fake):
    from tests.fake_model import head

    model, thread = await fake([head(500, {"error": {"message": "down"}})], [text("Hi"), done()])
    failed, _ = await run_to_end(thread, "first try")
    assert failed.status == "failed"
    await run_to_end(thread, "second try")
    assert wire_messages(model, 1) == [{"role": "user", "content": "first try\n\nsecond try"}]


async def test_an_interrupted_answer_is_replayed_as_interrupted(fake):
    model, thread = await fake([text("Half an"), keep_alive_forever()], [text("Ok"), done()])
    await run_to_end(thread, "hi")  # given up by the idle limit
    await run_to_end(thread, "go on")
    assert wire_messages(model, 1)[1] == {
        "role": "assistant",
        "content": "Half an\n\n(This answer was interrupted before it was finished.)",
    }
