"""Long threads open: a page and its first websocket frame show the latest part of the
conversation within a budget, earlier messages load on demand, a huge message is shown
shortened with a link to the whole text, and no frame the server sends is too big to send."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chatapp import services
from chatapp.models import Message
from chatapp.providers.scripted import Say
from chatapp.web.page import window
from tests.factories import assistant
from tests.web.test_consumer import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)
ONE_MIB = 1024 * 1024
EARLIER = re.compile(r'hx-get="(/threads/[^"]+/earlier/\?before=\d+)"')


@pytest.fixture
def long_thread(user):
    """70 questions and answers of 20,000 characters each: 2.8 MB of conversation."""
    bot = assistant("helper", name="Helper")
    thread = services.start_thread(bot, user=user)
    for turn in range(70):
        Message.objects.create(thread=thread, role="user", content=f"Q{turn:02d} " + "q" * 20_000)
        Message.objects.create(
            thread=thread, role="assistant", assistant=bot, content=f"A{turn:02d} " + "a" * 20_000
        )
    # Written over the past days, not in the last minute (a limit of messages per minute).
    Message.objects.filter(thread=thread).update(created_at=timezone.now() - timedelta(days=2))
    return thread


def owner_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def test_a_long_thread_opens_with_its_latest_part_in_one_small_frame(long_thread, user):
    communicator, connected = await connect(long_thread.pk, user)
    assert connected
    first = await communicator.receive_from()
    assert len(first.encode()) < ONE_MIB / 4
    assert "A69 " in first and "Q69 " in first and "Q00 " not in first
    assert "Show earlier messages" in first
    await communicator.disconnect()


async def test_a_message_sent_to_a_long_thread_is_stored_and_answered(long_thread, user, script):
    script(Say("Still with you."))
    communicator, _ = await connect(long_thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "one more", "client_id": "c9"})
    frames = await frames_until(communicator, 'data-running="false"')
    assert all(len(frame.encode()) < ONE_MIB / 4 for frame in frames)
    assert 'data-client-id="c9"' in "".join(frames)  # the page knows its message arrived
    assert await Message.objects.filter(content="one more").aexists()
    await communicator.disconnect()


def test_earlier_messages_load_page_by_page_until_the_first(long_thread, user):
    client = owner_client(user)
    page = client.get(reverse("thread", args=[long_thread.pk])).content.decode()
    assert len(page.encode()) < ONE_MIB / 2
    seen = set(re.findall(r"\b[QA](\d\d) ", page))
    pages = 1
    while found := EARLIER.search(page):
        page = client.get(found.group(1).replace("&amp;", "&")).content.decode()
        assert len(page.encode()) < ONE_MIB / 2
        seen |= set(re.findall(r"\b[QA](\d\d) ", page))
        pages += 1
    assert seen == {f"{turn:02d}" for turn in range(70)}  # nothing is out of reach
    assert pages > 3


def test_a_thread_is_read_newest_first_a_chunk_at_a_time(user):
    """250 short messages fit one page: all are shown, in order, and no statement read the
    thread whole (on PostgreSQL, `.iterator()` did: a cursor WITH HOLD)."""
    thread = services.start_thread(assistant("helper"), user=user)
    Message.objects.bulk_create(
        Message(thread=thread, role="user", content=f"m{number:03d}") for number in range(250)
    )
    with CaptureQueriesContext(connection) as queries:
        shown = [item.message.content for item in window(thread).items]
    assert shown == [f"m{number:03d}" for number in range(250)]
    reads = [q["sql"] for q in queries.captured_queries if '"chatapp_message"' in q["sql"]]
    assert len(reads) == 3 and all("LIMIT 100" in sql for sql in reads)


def test_earlier_messages_are_the_owners_only(long_thread, other_user):
    url = reverse("earlier_messages", args=[long_thread.pk]) + "?before=999999"
    assert owner_client(other_user).get(url).status_code == 404
    assert owner_client(long_thread.owner).get(url.replace("999999", "x")).status_code == 400


def test_a_huge_message_is_shown_shortened_with_the_whole_text_a_click_away(user, other_user):
    bot = assistant("helper", name="Helper")
    thread = services.start_thread(bot, user=user)
    Message.objects.create(thread=thread, role="user", content="write a lot")
    huge = Message.objects.create(
        thread=thread, role="assistant", assistant=bot, content="word " * 400_000
    )
    page = owner_client(user).get(reverse("thread", args=[thread.pk])).content.decode()
    assert len(page.encode()) < ONE_MIB / 2
    assert "Shortened: the whole text is 2000000 characters." in page
    download = reverse("message_text", args=[huge.pk])
    assert f'href="{download}"' in page
    whole = owner_client(user).get(download)
    assert whole["Content-Type"] == "text/plain; charset=utf-8"
    assert whole.content.decode() == huge.content
    assert owner_client(other_user).get(download).status_code == 404


async def test_a_long_resync_is_sent_in_frames_a_page_can_take(user):
    from chatapp.web.consumers import ThreadConsumer

    sent: list[str] = []
    consumer = ThreadConsumer()
    consumer.known, consumer.group = {7: 0}, "thread.x"

    async def send(text_data: str) -> None:
        sent.append(text_data)

    consumer.send = send  # type: ignore[method-assign]
    text = "é" * 300_000
    await consumer.chat_text({"message_id": 7, "offset": 0, "text": text, "broadcaster": "b"})
    assert len(sent) > 1 and all(len(frame.encode()) < ONE_MIB for frame in sent)
    assert consumer.known[7] == len(text)
