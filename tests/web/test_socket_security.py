"""Websockets follow the session and the site's origin, and one user cannot take more than
their share: sockets close when their user logs out, is deactivated or changes password (and
every frame checks); origins are matched by scheme, host and port; per-user limits hold."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from chatapp import services
from chatapp.asgi import application
from chatapp.models import Message, Run
from chatapp.providers.scripted import Say
from tests.factories import assistant
from tests.web.test_consumer import frames_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(user):
    return services.start_thread(assistant("helper", name="Helper"), user=user)


async def open_page(
    thread_id, client: Client, origin=b"http://127.0.0.1:8000", host=b"127.0.0.1:8000"
):
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", origin), (b"host", host), (b"cookie", cookie)]
    page = WebsocketCommunicator(application, f"/ws/threads/{thread_id}/", headers=headers)
    connected, _ = await page.connect()
    return page, connected


@pytest.fixture
async def signed_in(user):
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client


async def closed_with(page, code: int) -> str:
    """The notice the page got, once the socket closed with `code`."""
    notice = await page.receive_from()
    assert (await page.receive_output(timeout=5)) == {"type": "websocket.close", "code": code}
    return notice


# --- origins -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "opens"),
    [
        (b"http://127.0.0.1:8000", True),
        (b"http://127.0.0.1:9999", False),  # another port of the same host
        (b"https://127.0.0.1:8000", False),  # another scheme
        (b"http://evil.example:8000", False),
        (b"null", False),
        (b"", False),
    ],
)
async def test_only_the_sites_own_origin_opens_a_socket(thread, signed_in, origin, opens):
    page, connected = await open_page(thread.pk, signed_in, origin=origin)
    assert connected is opens
    if connected:
        await page.disconnect()


async def test_a_trusted_origin_opens_a_socket(thread, signed_in, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    page, connected = await open_page(thread.pk, signed_in, origin=b"https://chat.example.com")
    assert connected
    await page.disconnect()


async def test_a_host_that_is_not_allowed_opens_no_socket(thread, signed_in):
    _, connected = await open_page(
        thread.pk, signed_in, origin=b"http://evil.example", host=b"evil.example"
    )
    assert connected is False


# --- the session ---------------------------------------------------------------------------


async def test_logging_out_closes_the_sessions_sockets(thread, signed_in):
    page, _ = await open_page(thread.pk, signed_in)
    await page.receive_from()
    await sync_to_async(signed_in.logout)()
    assert "You are signed out" in await closed_with(page, 4401)


@pytest.mark.parametrize("change", ["deactivated", "new password"])
async def test_a_deactivated_user_or_a_new_password_closes_the_sockets(
    thread, signed_in, user, change
):
    page, _ = await open_page(thread.pk, signed_in)
    await page.receive_from()

    def apply() -> None:
        if change == "deactivated":
            user.is_active = False
        else:
            user.set_password("a-brand-new-one-1")
        user.save()

    await sync_to_async(apply)()
    assert "You are signed out" in await closed_with(page, 4401)


@pytest.mark.parametrize("ended", ["cleared", "expired"])
async def test_every_frame_checks_the_session(thread, signed_in, script, ended):
    script(Say("never"))
    page, _ = await open_page(thread.pk, signed_in)
    await page.receive_from()
    if ended == "cleared":  # gone without a word
        await Session.objects.all().adelete()
    else:  # still there, past its expiry
        await Session.objects.aupdate(expire_date=timezone.now() - timedelta(seconds=1))
    await page.send_json_to({"type": "message", "text": "still here?"})
    assert "You are signed out" in await closed_with(page, 4401)
    assert not await Message.objects.filter(thread=thread).aexists()


# --- per-user limits -------------------------------------------------------------------------


async def test_too_many_open_pages_are_refused_with_a_reason(thread, signed_in, settings):
    settings.CHATAPP_MAX_SOCKETS_PER_USER = 2
    first, _ = await open_page(thread.pk, signed_in)
    second, _ = await open_page(thread.pk, signed_in)
    third, _ = await open_page(thread.pk, signed_in)
    assert "too many chats open" in await closed_with(third, 4429)
    await first.disconnect()
    await second.disconnect()


async def test_one_user_has_a_limited_number_of_answers_at_once(user, signed_in, settings, script):
    settings.CHATAPP_MAX_RUNS_PER_USER = 1
    pause = asyncio.Event()
    script(Say("Busy busy", pause=pause))
    helper = await sync_to_async(assistant)("helper", name="Helper")
    first = await sync_to_async(services.start_thread)(helper, user=user)
    second = await sync_to_async(services.start_thread)(helper, user=user)
    one, _ = await open_page(first.pk, signed_in)
    two, _ = await open_page(second.pk, signed_in)
    await one.receive_from()
    await two.receive_from()
    await one.send_json_to({"type": "message", "text": "first"})
    await frames_until(one, "Stop")
    await two.send_json_to({"type": "message", "text": "second"})
    notice = (await frames_until(two, 'id="notice"'))[-1]
    assert "1 answers are being written for you already (the limit is 1)" in notice
    pause.set()
    await frames_until(one, 'data-running="false"')
    await one.disconnect()
    await two.disconnect()


def test_messages_per_minute_are_limited_across_all_threads(user, settings):
    settings.CHATAPP_MAX_MESSAGES_PER_MINUTE = 2
    helper = assistant("helper", name="Helper")
    for text in ("one", "two"):
        thread = services.start_thread(helper, user=user)
        _, run = services.send_message(thread, text)
        Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    with pytest.raises(services.LimitReached, match="You sent 2 messages in the last minute"):
        services.send_message(services.start_thread(helper, user=user), "three")
    Message.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    services.send_message(services.start_thread(helper, user=user), "later")  # allowed again


def test_a_daily_token_budget(user, settings):
    settings.CHATAPP_DAILY_TOKENS_PER_USER = 100
    thread = services.start_thread(assistant("helper", name="Helper"), user=user)
    _, run = services.send_message(thread, "hi")
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.COMPLETED, usage={"prompt_tokens": 70, "completion_tokens": 30}
    )
    with pytest.raises(services.LimitReached, match="You have used today's 100 tokens"):
        services.send_message(thread, "again")
    assert services.tokens_today(user.pk) == 100


def test_staff_see_each_users_usage_beside_the_limits(admin_client, user, settings):
    from django.urls import reverse

    settings.CHATAPP_DAILY_TOKENS_PER_USER = 1000
    thread = services.start_thread(assistant("helper", name="Helper"), user=user)
    _, run = services.send_message(thread, "hi")
    Run.objects.filter(pk=run.pk).update(usage={"prompt_tokens": 12, "completion_tokens": 30})
    listing = admin_client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "1 of 3" in listing and "42 of 1,000" in listing  # answering now; tokens today
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert "At most 20 messages a minute" in page
