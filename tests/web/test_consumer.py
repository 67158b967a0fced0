"""The websocket against the real ASGI app: access, streaming, reconnects, cancel, limits."""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chatapp import admission, services
from chatapp.asgi import application
from chatapp.models import Message, Run
from chatapp.providers.scripted import Say
from chatapp.web import broadcast
from chatapp.web.hub import hub
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)

BODY = re.compile(r'<div [^>]*id="msg-(\d+)-body"[^>]*>(.*?)</div>', re.S)


@sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(thread_id, user=None, origin=b"http://127.0.0.1:8000"):
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    communicator = WebsocketCommunicator(application, f"/ws/threads/{thread_id}/", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


async def frames_until(communicator, needle: str, wait: float = 5) -> list[str]:
    """Receive frames until one contains `needle`; return them all."""
    frames = []
    while True:
        frames.append(await communicator.receive_from(timeout=wait))
        if needle in frames[-1]:
            return frames


def shown_text(frames: list[str], message_id: int) -> str:
    """The text a browser would show in a streaming message: what the first frame that had
    the message put there, plus every appended batch."""
    text = ""
    for frame in frames:
        for found_id, content in BODY.findall(frame):
            if int(found_id) == message_id:
                text += html.unescape(content)
    return text


@pytest.fixture
def thread(user):
    return services.start_thread(assistant("helper", name="Helper"), user=user)


async def test_the_owner_connects_and_sees_the_thread(thread, user):
    communicator, connected = await connect(thread.pk, user)
    assert connected
    first = await communicator.receive_from()
    assert 'id="messages"' in first and 'id="run-status"' in first and "Helper" in first
    await communicator.disconnect()


@pytest.mark.parametrize("who", ["other", "anonymous", "missing"])
async def test_anyone_else_gets_the_same_refusal(thread, other_user, who):
    thread_id = uuid.uuid4() if who == "missing" else thread.pk
    user = None if who == "anonymous" else other_user
    if who == "missing":
        user = await sync_to_async(lambda: thread.owner)()
    _, connected = await connect(thread_id, user)
    assert connected is False


async def test_a_page_connecting_reads_the_thread_once(thread, user, every_query):
    """The socket looked the thread up a moment before it shows it: a connect does not read
    it again (300 pages connecting at once each paid for a second read)."""
    communicator, _ = await connect(thread.pk, user)
    first = await communicator.receive_from()
    await communicator.disconnect()
    assert "Helper" in first
    reads = [q for q in every_query if q.startswith('SELECT "chatapp_thread"')]
    assert len(reads) == 1, "\n".join(reads)


async def test_a_page_announces_itself_only_to_a_thread_with_a_run_going(thread, user, monkeypatch):
    """With several processes, a process's first page of a thread tells the others only when
    the thread has a run going: a run that starts later finds the page's process in the
    thread's group by itself, and most pages open on threads with none (every announcement
    reaches every process)."""
    here = hub()
    monkeypatch.setattr(here, "cross_process", True)  # as on Redis, with the in-memory layer
    announced: list[str] = []

    async def announce(thread_id):
        announced.append(str(thread_id))

    monkeypatch.setattr(here, "announce", announce)
    for running in (False, True):
        if running:  # started by a page of another process
            await Run.objects.acreate(
                thread=thread, assistant_id=thread.current_assistant_id, status="in_progress"
            )
        communicator, _ = await connect(thread.pk, user)
        await communicator.receive_from()
        await communicator.disconnect()
    assert announced == [str(thread.pk)]


async def test_a_foreign_origin_is_refused(thread, user):
    _, connected = await connect(thread.pk, user, origin=b"https://evil.example")
    assert connected is False


async def test_a_run_streams_in_order_and_ends_with_the_saved_text(thread, user, script):
    script(Say("Hello from the **scripted** model, in words."))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "hi", "client_id": "c1"})
    frames = await frames_until(communicator, 'data-running="false"')
    joined = "\n".join(frames)
    order = [
        joined.index("msg--user"),
        joined.index('data-running="true"'),
        joined.index("msg--streaming"),
        joined.index("<strong>scripted</strong>"),  # the final message, as Markdown
        joined.index('data-running="false"'),
    ]
    assert order == sorted(order)
    reply = await Message.objects.aget(role="assistant")
    assert shown_text(frames, reply.pk) == "Hello from the **scripted** model, in words."
    text_frames = [f for f in frames if f"msg-{reply.pk}-body" in f and "beforeend" in f]
    assert 1 <= len(text_frames) < 8  # coalesced, not one frame per word
    await communicator.disconnect()


async def test_a_run_outlives_the_socket_and_is_there_on_reconnect(thread, user, script):
    script(Say("Still here after you left."))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "hi"})
    await communicator.disconnect()
    await broadcast.wait_for_all()
    run = await Run.objects.aget(thread=thread)
    assert run.status == Run.Status.COMPLETED
    again, _ = await connect(thread.pk, user)
    state = await again.receive_from()
    assert "Still here after you left." in state and 'data-running="false"' in state
    await again.disconnect()


@pytest.mark.parametrize("flush_interval", [0.0, 3600.0])
async def test_reconnect_mid_run_continues_without_gap_or_duplicate(
    thread, user, script, settings, flush_interval
):
    # flush 0: the database holds all text so far; 3600: it holds none, so the page must
    # ask the broadcaster for what it missed.
    settings.CHATAPP_FLUSH_INTERVAL = flush_interval
    pause = asyncio.Event()
    script(Say("one two three four five six seven", pause=pause))
    first, _ = await connect(thread.pk, user)
    await first.receive_from()
    await first.send_json_to({"type": "message", "text": "count"})
    await frames_until(first, 'beforeend">one')
    await asyncio.sleep(0.1)
    second, _ = await connect(thread.pk, user)
    frames = [await second.receive_from()]
    pause.set()
    frames += await frames_until(second, 'data-running="false"')
    reply = await Message.objects.aget(role="assistant")
    assert reply.content == "one two three four five six seven"
    assert shown_text(frames, reply.pk) == reply.content
    for communicator in (first, second):
        await communicator.disconnect()


async def test_cancel_keeps_the_partial_text_and_frees_the_input(thread, user, script):
    pause = asyncio.Event()
    script(Say("Partial words then more", pause=pause))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "go"})
    await frames_until(communicator, '">Partial')  # the first word is on the page
    await communicator.send_json_to({"type": "cancel"})
    frames = await frames_until(communicator, 'data-running="false"')
    pause.set()
    await broadcast.wait_for_all()
    run = await Run.objects.aget(thread=thread)
    reply = await Message.objects.aget(role="assistant")
    assert run.status == Run.Status.CANCELLED
    assert (reply.content, reply.status) == ("Partial", "incomplete")
    assert any("msg--incomplete" in f for f in frames)
    await communicator.disconnect()


async def test_a_stop_is_heard_while_starts_wait_for_their_turn(thread, user, script, settings):
    settings.CHATAPP_STARTS_AT_ONCE = 1
    pause = asyncio.Event()
    script(Say("Partial words then more", pause=pause))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "go"})
    await frames_until(communicator, '">Partial')
    crowd = await admission.messages.enter()  # every place taken by other starts
    await communicator.send_json_to({"type": "cancel"})
    await frames_until(communicator, 'data-running="false"')
    crowd.leave()
    pause.set()
    await broadcast.wait_for_all()
    assert (await Run.objects.aget(thread=thread)).status == Run.Status.CANCELLED
    await communicator.disconnect()


async def test_a_message_waits_for_a_place_to_start_and_then_starts(thread, user, script, settings):
    settings.CHATAPP_STARTS_AT_ONCE = 1
    script(Say("Here I am."))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    crowd = await admission.messages.enter()
    await communicator.send_json_to({"type": "message", "text": "hello"})
    await asyncio.sleep(0.2)
    assert not await Message.objects.filter(thread=thread).aexists()  # waiting its turn
    crowd.leave()
    await frames_until(communicator, "Here I am.")
    await broadcast.wait_for_all()
    assert (await Run.objects.aget(thread=thread)).status == Run.Status.COMPLETED
    await communicator.disconnect()


async def test_a_second_message_during_a_run_is_refused(thread, user, script):
    pause = asyncio.Event()
    script(Say("Busy busy", pause=pause), Say("never"))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "first"})
    await frames_until(communicator, "Stop")
    await communicator.send_json_to({"type": "message", "text": "second"})
    frames = await frames_until(communicator, 'id="notice"')
    assert "An answer is still being written" in frames[-1]
    pause.set()
    await broadcast.wait_for_all()
    assert await Message.objects.filter(role="user").acount() == 1
    assert await Run.objects.acount() == 1
    await communicator.disconnect()


async def test_a_repeated_client_id_posts_once(thread, user, script):
    script(Say("Once."), Say("Twice?"))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    frame = {"type": "message", "text": "hello", "client_id": "same-id"}
    await communicator.send_json_to(frame)
    await frames_until(communicator, 'data-running="false"')
    await communicator.send_json_to(frame)
    await asyncio.sleep(0.2)
    await broadcast.wait_for_all()
    assert await Message.objects.filter(role="user").acount() == 1
    assert await Run.objects.acount() == 1
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", '"type" must be'),
        ('{"type": "explode"}', '"type" must be'),
        ('{"type": "message"}', 'needs "text"'),
        ('{"type": "message", "text": "hi", "admin": true}', "unexpected admin"),
        ('{"type": "message", "text": 5}', "Write a message first"),
        ('{"type": "message", "text": "   "}', "Write a message first"),
        (json.dumps({"type": "message", "text": "x" * 8001}), "too long"),
        (json.dumps({"type": "message", "text": "x" * 20000}), "too long"),
        ('{"type": "message", "text": "hi", "client_id": 7}', "client_id must be"),
        ('{"type": "cancel"}', "Nothing is running"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_lives_on(
    thread, user, script, frame, reason
):
    script(Say("Fine."))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_to(text_data=frame)
    notice = await communicator.receive_from()
    assert 'id="notice"' in notice and html.escape(reason, quote=True) in notice
    await communicator.send_json_to({"type": "message", "text": "still there?"})
    await frames_until(communicator, "Fine.")
    await communicator.disconnect()


async def test_too_many_frames_are_refused(thread, user):
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    for _ in range(21):
        await communicator.send_to(text_data='{"type": "cancel"}')
    notices = [await communicator.receive_from() for _ in range(21)]
    assert "Too many messages at once" in notices[-1]
    assert "Too many" not in notices[-2]
    await communicator.disconnect()


async def test_model_output_arrives_inert(thread, user, script):
    script(Say("<script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))"))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "<b>me</b>"})
    frames = "\n".join(await frames_until(communicator, 'data-running="false"'))
    assert "<script>alert" not in frames and "<img" not in frames
    assert 'href="javascript' not in frames
    assert "&lt;b&gt;me&lt;/b&gt;" in frames
    await communicator.disconnect()


async def test_a_run_whose_process_died_is_not_shown_as_answering(thread, user, settings):
    settings.CHATAPP_RUN_EXPIRY = 0
    run = await Run.objects.acreate(
        thread=thread, assistant_id=thread.current_assistant_id, status="in_progress"
    )
    await Message.objects.acreate(thread=thread, run=run, role="user", content="hello?")
    communicator, _ = await connect(thread.pk, user)
    state = await communicator.receive_from()
    assert 'data-running="false"' in state
    assert "stopped answering and was given up" in state
    await communicator.disconnect()


async def test_a_fragment_that_fails_to_render_does_not_stop_the_run(
    thread, user, script, monkeypatch
):
    from chatapp.web import fragments

    real = fragments.event_fragments

    def broken(event, *args, **kwargs):
        if event.type == "message.started":
            raise RuntimeError("template bug")
        return real(event, *args, **kwargs)

    monkeypatch.setattr(fragments, "event_fragments", broken)
    script(Say("Still answered."))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_json_to({"type": "message", "text": "hi"})
    await frames_until(communicator, 'data-running="false"')
    await broadcast.wait_for_all()
    run = await Run.objects.aget(thread=thread)
    assert run.status == Run.Status.COMPLETED
    await communicator.disconnect()


# --- frames of any shape: a notice, and the socket lives on ----------------------------------


async def still_alive(communicator) -> None:
    """The socket still answers: a frame it refuses gets a notice, not a close."""
    await communicator.send_to(text_data='{"type": "ping"}')
    assert "must be" in await communicator.receive_from()


@pytest.mark.parametrize(
    ("frame", "said"),
    [
        ("[" * 5000 + "]" * 5000, "Malformed frame: not JSON."),
        ('{"type": "message", "text": "\\ud800"}', "characters that are not valid text"),
        ('{"type": "message", "text": "hi", "client_id": "\\udfff"}', "client_id must be"),
    ],
    ids=["nested 5000 deep", "a lone surrogate", "a lone surrogate in client_id"],
)
async def test_a_strange_frame_gets_a_notice_and_the_socket_lives_on(thread, user, frame, said):
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_to(text_data=frame)
    assert said in html.unescape(await communicator.receive_from())
    await still_alive(communicator)
    assert not await Message.objects.filter(thread=thread).aexists()
    await communicator.disconnect()


async def test_a_binary_frame_gets_a_notice(thread, user):
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert "not binary data" in await communicator.receive_from()
    await still_alive(communicator)
    await communicator.disconnect()


async def test_a_message_to_a_thread_deleted_meanwhile_gets_a_notice(thread, user):
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    await sync_to_async(services.delete_thread)(thread)
    await communicator.send_json_to({"type": "message", "text": "anyone there?"})
    assert "This chat was deleted." in await communicator.receive_from()
    await still_alive(communicator)
    await communicator.disconnect()


async def test_an_unknown_socket_path_is_refused_not_an_error(user):
    communicator = WebsocketCommunicator(
        application,
        "/ws/nowhere/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
    )
    connected, _ = await communicator.connect()
    assert connected is False


async def test_the_frame_limit_follows_the_message_limit(thread, user, settings, script):
    settings.CHATAPP_MAX_MESSAGE_CHARS = 20_000
    script(Say("Read it all."))
    communicator, _ = await connect(thread.pk, user)
    await communicator.receive_from()
    long_text = "x" * 19_000  # more than the old fixed 16,000-character cap
    await communicator.send_json_to({"type": "message", "text": long_text})
    await frames_until(communicator, 'data-running="false"')
    assert (await Message.objects.aget(role="user")).content == long_text
    await communicator.send_json_to({"type": "message", "text": "y" * 45_000})
    assert "the limit is 20000 characters" in await communicator.receive_from()
    await communicator.disconnect()
