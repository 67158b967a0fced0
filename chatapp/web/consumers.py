"""ThreadConsumer: one websocket of one thread page.

It shows the thread as it is on (re)connect, forwards the group's frames, and turns the
client's JSON into service calls. The run itself is a background task (chatapp.web.broadcast), so a
closed socket never stops it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chatapp import admission, files, runs, services
from chatapp.db import db
from chatapp.models import Run, Thread
from chatapp.web import broadcast, fragments, lifecycle
from chatapp.web.access import owned_thread, still_signed_in
from chatapp.web.hub import hub
from chatapp.web.page import active_run

logger = logging.getLogger(__name__)
FRAMES_PER_WINDOW, WINDOW_SECONDS = 20, 10.0
SOMETHING_WRONG = "Something went wrong on our side; please try again."
# Well under the 1 MiB a websocket message may have; pages are built to stay under it
# (CHATAPP_PAGE_CHARS, CHATAPP_SHOWN_CHARS), this is the last guard.
MAX_SEND_BYTES = 768 * 1024
TEXT_PIECE = 32_000  # characters of streamed text per frame, at most 4 bytes each
TOO_BIG = "Part of this conversation is too large to show here; reload the page."
SIGNED_OUT = "You are signed out: log in again to go on."
SIGNED_OUT_CODE = 4401  # not one htmx reconnects on: the page stays signed out
TOO_MANY_PAGES = "You have too many chats open at once; close some and reload this one."
TOO_MANY = 4429
# What a page may send: each frame type with its required and optional keys (htmx's ws-send
# adds HEADERS to every frame).
FRAMES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "message": (frozenset({"text"}), frozenset({"client_id", "attachments"})),
    # The last message, replaced.
    "edit": (frozenset({"text"}), frozenset({"client_id", "attachments"})),
    "retry": (frozenset(), frozenset()),  # the last answer, written again
    "cancel": (frozenset(), frozenset()),
    "approve": (frozenset({"call_id"}), frozenset()),
    "reject": (frozenset({"call_id"}), frozenset({"reason"})),
}


class FrameError(ValueError):
    """A client frame we refuse; the text is shown to the user."""


class ThreadConsumer(AsyncWebsocketConsumer):
    thread: Thread
    # Pages get their frames from the hub, in this process; they need no layer channel each.
    channel_layer_alias = None

    async def connect(self) -> None:
        thread = await self.owned_thread()
        if thread is None:  # someone else's thread and a missing one look the same
            await self.close()
            return
        self.thread = thread
        self.group = broadcast.group_name(thread.pk)
        self.known: dict[int, int] = {}  # streaming message id -> characters shown
        self.recent: deque[float] = deque()
        self.user_id = self.scope["user"].pk
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.hub = hub()
        if self.hub.pages_of(self.user_id) >= settings.CHATAPP_MAX_SOCKETS_PER_USER:
            await self.accept()  # to say why: a refused handshake says nothing
            await self.send(text_data=fragments.notice(TOO_MANY_PAGES))
            await self.close(code=TOO_MANY)
            return
        first = await self.hub.join(thread.pk, self, self.user_id)
        # Asked after joining: a run that starts later finds this process in the thread's
        # group by itself; only one already going must be told (most threads have none).
        if first and self.hub.cross_process and await db(active_run)(thread.pk) is not None:
            await self.hub.announce(thread.pk)
        await self.accept()
        broadcast.keep_watch()
        html, self.known = await db(self.current_state)(reread=False)  # owned_thread just read it
        await self.send_html(html)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "hub"):
            await self.hub.leave(self.thread.pk, self, self.user_id)

    async def signed_out(self) -> bool:
        """Close the socket, saying why, if its session no longer signs its user in."""
        if await db(still_signed_in)(self.session_key, self.user_id):
            return False
        await self.send(text_data=fragments.notice(SIGNED_OUT))
        await self.close(code=SIGNED_OUT_CODE)
        return True

    @db
    def owned_thread(self) -> Thread | None:
        return owned_thread(self.scope.get("user"), self.scope["url_route"]["kwargs"]["thread_id"])

    def current_state(self, *, reread: bool = True) -> tuple[str, dict[int, int]]:
        """The thread as stored, for the page to show instead of what it has; the streaming
        messages' lengths, for the text that follows. `reread`: the thread may have changed
        since this socket read it."""
        services.expire_stale_runs(self.thread)  # after a server restart: not "answering…"
        if reread:
            self.thread.refresh_from_db()
        return fragments.connect_state(self.thread)

    # --- from the browser -------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Whatever arrives, the socket lives on: a frame we refuse gets a notice saying why.
        But first, every frame: is its user still signed in?"""
        if await self.signed_out():
            return
        try:
            self.count_frame()
            if bytes_data is not None:
                raise FrameError("Malformed frame: send text, not binary data.")
            frame = parse_frame(text_data)
            if frame["type"] == "cancel":  # never held behind the crowd of starts
                await self.cancel()
                return
            async with admission.messages.held():  # a few answers start at a time
                match frame["type"]:
                    case "approve" | "reject":
                        await self.decide(frame)
                    case "retry":
                        await self.retry()
                    case kind:
                        await self.post(frame, edit=kind == "edit")
        except (
            FrameError,
            services.MessageRejected,
            services.ThreadBusy,
            runs.DecisionRefused,
            files.FileRejected,
        ) as exc:
            await self.send(text_data=fragments.notice(str(exc)))
        except Exception:
            logger.exception("A frame on thread %s failed", self.thread.pk)
            await self.send(text_data=fragments.notice(SOMETHING_WRONG))

    def count_frame(self) -> None:
        now = time.monotonic()
        while self.recent and now - self.recent[0] > WINDOW_SECONDS:
            self.recent.popleft()
        if len(self.recent) >= FRAMES_PER_WINDOW:
            raise FrameError("Too many messages at once; wait a few seconds.")
        self.recent.append(now)

    async def post(self, frame: dict[str, Any], *, edit: bool = False) -> None:
        send = db(services.edit_last_message if edit else services.send_message)
        attachments = frame.get("attachments") or ()
        _, run = await send(
            self.thread, frame["text"], client_id=frame.get("client_id"), attachments=attachments
        )
        if run.status == Run.Status.QUEUED:
            # An edit, or files: every page shows the thread as it is now, the new message
            # (with its files) in place.
            shown = edit or bool(attachments)
            if shown:
                await self.refresh_every_page()
            broadcast.start(run.pk, self.thread.pk, question_shown=shown)

    async def retry(self) -> None:
        run = await db(services.retry_last_answer)(self.thread)
        await self.refresh_every_page()  # the answer it replaces leaves every page
        broadcast.start(run.pk, self.thread.pk, question_shown=True)

    async def cancel(self) -> None:
        run = await self.thread.runs.filter(status__in=Run.ACTIVE).afirst()
        outcome = await db(runs.cancel)(run) if run else None
        if outcome in (None, services.Cancel.NOTHING_RUNNING):
            raise FrameError("Nothing is running.")
        if outcome == services.Cancel.CANCELLED:  # nobody runs it to say so: we do
            if run.status == Run.Status.AWAITING_APPROVAL:  # its calls are no longer asked
                await self.refresh_every_page()
            else:
                await lifecycle.tell_pages_it_ended(run.pk, self.thread.pk)

    async def decide(self, frame: dict[str, Any]) -> None:
        """Approve or reject a paused call; after the last decision the run goes on here,
        whichever process ran it before."""
        if not isinstance(call_id := frame["call_id"], str) or not isinstance(
            reason := frame.get("reason", ""), str
        ):
            raise FrameError("Malformed frame: call_id and reason must be text.")
        run = await self.thread.runs.filter(status=Run.Status.AWAITING_APPROVAL).afirst()
        if run is None:
            raise runs.DecisionRefused("Nothing is waiting for approval here any more.")
        decided = await db(runs.decide)(
            run.pk,
            call_id,
            approved=frame["type"] == "approve",
            by=self.scope["user"],
            reason=reason,
        )
        await self.refresh_every_page()  # each shows the decision
        if decided.resumed:
            broadcast.start(run.pk, self.thread.pk)

    async def refresh_every_page(self) -> None:
        """Every page of the thread, in every process, shows it again as stored: for the
        rare changes that are not a run's events (a retry, an edit, a decision)."""
        await self.hub.publish(self.thread.pk, {"type": "chat.refresh"}, everywhere=True)

    async def refresh(self) -> None:
        html, self.known = await db(self.current_state)()
        await self.send_html(html)

    # --- from the thread's group -------------------------------------------------------------

    async def deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "chat.session_ended":  # logged out; the session is going
            if message["session"] == self.session_key:
                await self.send(text_data=fragments.notice(SIGNED_OUT))
                await self.close(code=SIGNED_OUT_CODE)
        elif message["type"] == "chat.check_session":  # deactivated, or a new password
            await self.signed_out()
        elif message["type"] == "chat.html":
            await self.send_html(message["html"])
        elif message["type"] == "chat.refresh":
            await self.refresh()
        elif message["type"] == "chat.text":
            await self.chat_text(message)

    async def chat_text(self, event: dict[str, Any]) -> None:
        message_id, offset, text = event["message_id"], event["offset"], event["text"]
        shown = self.known.get(message_id, 0)
        if offset > shown:  # we missed some text: ask the run for it
            await self.hub.resync(self.thread.pk, message_id, shown, event.get("broadcaster", ""))
            return
        fresh = text[shown - offset :]
        self.known[message_id] = shown + len(fresh)
        for start in range(0, len(fresh), TEXT_PIECE):  # a long resync: in several frames
            piece = fresh[start : start + TEXT_PIECE]
            await self.send_html(fragments.text_fragment(message_id, piece))

    async def send_html(self, html: str) -> None:
        """Every frame to the page goes through here: none may be larger than a websocket
        message may be (Daphne and browsers close the socket past 1 MiB)."""
        if len(html) > MAX_SEND_BYTES // 4 and len(html.encode()) > MAX_SEND_BYTES:
            logger.error("A %d-character frame for thread %s was not sent", len(html), self.group)
            html = fragments.notice(TOO_BIG)
        await self.send(text_data=html)


def max_frame_chars() -> int:
    """The longest frame: a message of CHATAPP_MAX_MESSAGE_CHARS, every character escaped
    (JSON doubles quotes, backslashes and line breaks), with room for the other fields."""
    return 2 * settings.CHATAPP_MAX_MESSAGE_CHARS + 1_000


def parse_frame(text_data: str | None) -> dict[str, Any]:
    """The client's frame, validated against FRAMES: its type, its required keys and no key
    it does not know. Anything else is a FrameError with a reason."""
    if not text_data:
        raise FrameError("Empty frame.")
    if len(text_data) > max_frame_chars():
        raise FrameError(
            f"That message is too long (the limit is {settings.CHATAPP_MAX_MESSAGE_CHARS} "
            "characters)."
        )
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError):  # RecursionError: [[[[… nested thousands deep
        raise FrameError("Malformed frame: not JSON.") from None
    if not isinstance(frame, dict) or frame.get("type") not in FRAMES:
        kinds = ", ".join(f'"{kind}"' for kind in FRAMES)
        raise FrameError(f'Malformed frame: "type" must be one of {kinds}.')
    required, optional = FRAMES[frame["type"]]
    if unknown := set(frame) - required - optional - {"type", "HEADERS"}:
        raise FrameError(f"Malformed frame: unexpected {', '.join(sorted(unknown))}.")
    if missing := required - set(frame):
        needed = ", ".join(f'"{key}"' for key in sorted(missing))
        raise FrameError(f"Malformed frame: {frame['type']} needs {needed}.")
    if frame.get("client_id") == "":
        frame["client_id"] = None
    return frame


class NoSuchSocket(AsyncWebsocketConsumer):
    """Any other websocket path: refused, as an unknown thread is."""

    async def connect(self) -> None:
        await self.close()
