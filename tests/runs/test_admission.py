"""Answers start a few at a time (chatapp/admission.py), in the order they came, and a run
gives its place back before the model or a tool can keep it waiting."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from assistants_registry.tools import tool
from chatapp import admission, services
from chatapp.models import Run
from chatapp.providers.scripted import Say
from chatapp.runs import events, say
from chatapp.runs.engine import execute
from chatapp.runs.store import decide
from tests.factories import assistant


async def test_a_gate_admits_so_many_at_once_in_the_order_they_came(settings):
    settings.CHATAPP_STARTS_AT_ONCE = 2
    gate = admission.Gate()
    inside, most, order = 0, 0, []

    async def start(number: int) -> None:
        nonlocal inside, most
        async with gate.held():
            order.append(number)
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(start(number) for number in range(6)))
    assert most == 2
    assert order == list(range(6))


async def test_a_place_is_given_back_once_however_often_it_is_left(settings):
    settings.CHATAPP_STARTS_AT_ONCE = 1
    gate = admission.Gate()
    ticket = await gate.enter()
    ticket.leave()
    ticket.leave()  # a second leave must not make room for two
    first = await gate.enter()
    second = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.05)
    assert not second.done()
    first.leave()
    (await second).leave()


def test_each_event_loop_has_a_gate_of_its_own(settings):
    """A process may run several loops in turn (tests do): a gate contended on one must
    still work on the next."""
    settings.CHATAPP_STARTS_AT_ONCE = 1
    gate = admission.Gate()

    async def contend() -> None:
        async def hold() -> None:
            async with gate.held():
                await asyncio.sleep(0.01)

        await asyncio.gather(hold(), hold())

    asyncio.run(contend())
    asyncio.run(contend())


@pytest.mark.django_db(transaction=True)
async def test_a_run_gives_its_place_back_before_the_model_answers(user, script, settings):
    """With room for one start, a second run starts and ends while the first one's model is
    still writing: the model's time is not a start's."""
    settings.CHATAPP_STARTS_AT_ONCE = 1
    writing = asyncio.Event()
    script(Say("A long answer", pause=writing), Say("Quick."))
    bot = await sync_to_async(assistant)("helper")
    first = await sync_to_async(services.start_thread)(bot, user=user)
    second = await sync_to_async(services.start_thread)(bot, user=user)
    _, slow = await sync_to_async(services.send_message)(first, "write a lot")
    spoken = asyncio.Event()

    async def run_slow() -> None:
        async for event in execute(slow.pk):
            if isinstance(event, events.TextDelta):
                spoken.set()

    slow_task = asyncio.create_task(run_slow())
    await asyncio.wait_for(spoken.wait(), 5)
    _, quick = await sync_to_async(services.send_message)(second, "one word")
    await asyncio.wait_for(_drain(execute(quick.pk)), 5)
    await quick.arefresh_from_db()
    assert quick.status == Run.Status.COMPLETED
    assert not slow_task.done()  # the first model is still writing
    writing.set()
    await asyncio.wait_for(slow_task, 5)
    await slow.arefresh_from_db()
    assert slow.status == Run.Status.COMPLETED


released = threading.Event()


@tool(needs_approval=True)
def deploy() -> str:
    """Deploy the site; takes until released."""
    released.wait(timeout=10)
    return "Deployed."


@pytest.mark.django_db(transaction=True)
async def test_a_resumed_run_gives_its_place_back_before_its_tools_run(
    user, script, settings, tools
):
    settings.CHATAPP_STARTS_AT_ONCE = 1
    released.clear()
    tools(deploy)
    script(Say("Deploying.", calls=[("deploy", {})]), Say("Hello."), Say("It is live."))
    bot = await sync_to_async(assistant)("ops", tools=["deploy"])
    paused_thread = await sync_to_async(services.start_thread)(bot, user=user)
    other = await sync_to_async(services.start_thread)(bot, user=user)
    paused = await sync_to_async(say)(paused_thread, "deploy it")
    assert paused.status == Run.Status.AWAITING_APPROVAL
    (step,) = await sync_to_async(list)(paused.steps.filter(kind="approval"))
    await sync_to_async(decide)(paused.pk, step.data["call_id"], approved=True, by=user)
    resumed = asyncio.create_task(_drain(execute(paused.pk)))  # its tool waits for `released`
    await asyncio.sleep(0.2)
    _, greeting = await sync_to_async(services.send_message)(other, "hello")
    await asyncio.wait_for(_drain(execute(greeting.pk)), 5)
    await greeting.arefresh_from_db()
    assert greeting.status == Run.Status.COMPLETED
    assert not resumed.done()
    released.set()
    await asyncio.wait_for(resumed, 10)
    await paused.arefresh_from_db()
    assert paused.status == Run.Status.COMPLETED


async def _drain(stream) -> list:
    return [event async for event in stream]
