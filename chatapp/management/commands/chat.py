"""A terminal chat over the same run loop as the browser: `manage.py chat [assistant-slug]`."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from chatapp import files, runs, services, transcript
from chatapp.models import Assistant, Attachment, Run, Thread
from chatapp.runs import events
from chatapp.services import MessageRejected, ThreadBusy


class Quit(Exception):
    """Ctrl-C twice: leave the chat."""


class Command(BaseCommand):
    help = "Chat with the assistants in the terminal. Ctrl-C stops an answer."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("assistant", nargs="?", help="slug of the first assistant")
        parser.add_argument("--user", default="cli", help="whose thread it is (created if new)")
        parser.add_argument("--thread", help="continue this thread (its id)")
        parser.add_argument("--quiet", action="store_true", help="print only the messages")
        parser.add_argument(
            "--attach",
            action="append",
            default=[],
            metavar="PATH",
            help="a file sent with your first message (repeat for more)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.quiet = options["quiet"]
        user, created = get_user_model().objects.get_or_create(username=options["user"])
        self.user = user
        if created:
            self.stdout.write(
                f"{user.get_username()} is a new user, with no permissions: tools that need one "
                "are not offered (--user demo chats as the demo user)."
            )
        thread = self.open_thread(user, options["assistant"], options["thread"])
        self.stdout.write(
            f"Thread {thread.pk} with {thread.current_assistant.name}. "
            "Ctrl-C stops an answer; an empty line, Ctrl-D or Ctrl-C at the prompt ends the chat."
        )
        self.waiting = self.attach(thread, options["attach"])
        while True:
            self.stdout.write("you> ", ending="")
            self.stdout.flush()
            try:
                line = sys.stdin.readline()
            except KeyboardInterrupt:
                line = ""
            if not line.strip():
                break
            try:
                run = asyncio.run(self.answer(thread, line))
                while run is not None and run.status == Run.Status.AWAITING_APPROVAL:
                    run = self.decide(run)
            except Quit:
                self.stdout.write("")
                raise SystemExit(130) from None

    async def answer(self, thread: Thread, line: str) -> Run | None:
        """Post the line and show the run as it happens."""
        try:
            _, run = await sync_to_async(services.send_message)(
                thread, line, attachments=[a.pk for a in self.waiting]
            )
        except (MessageRejected, ThreadBusy, files.FileRejected) as exc:
            self.stderr.write(str(exc))
            return None
        self.waiting = []  # sent with this message
        return await self.follow(run, thread)

    def attach(self, thread: Thread, paths: list[str]) -> list[Attachment]:
        """--attach: the files, stored as the thread's now, to go with the first message."""
        try:
            attached = runs.attach_all(thread, paths)
        except OSError as exc:
            raise CommandError(f"Cannot read {exc.filename}: {exc.strerror}.") from None
        except files.FileRejected as exc:
            raise CommandError(str(exc)) from None
        if attached:
            names = ", ".join(a.name for a in attached)
            self.stdout.write(f"Attached {names}: sent with your first message.")
        return attached

    @sync_to_async
    def show_files(self, event: events.ToolResult) -> None:
        """Where to open the files a tool made: their path on this machine (local storage),
        else their address on the site."""
        made = Attachment.objects.filter(
            message__run_id=event.run_id, message__tool_call_id=event.call_id
        )
        for attachment in made:
            try:
                where = attachment.file.path
            except NotImplementedError:  # a remote storage backend
                where = reverse("file", args=[attachment.pk])
            self.stdout.write(f"  📎 {attachment.name} ({attachment.size} bytes): {where}")

    def decide(self, run: Run) -> Run | None:
        """Put each call the run waits on to the user: y approves, anything else rejects
        (with an optional reason). The last decision runs the rest of the answer. At the end
        of input the run stays paused: it can be decided later, in the browser."""
        for _, call in runs.pending_approvals(run.pk):
            self.stdout.write(f"  ? {call.name}({call.arguments}) approve? [y/N] ", ending="")
            self.stdout.flush()
            answer = self.read_line()
            if answer is None:
                self.stdout.write("\nThe answer waits for your decision (in the browser too).")
                raise SystemExit(0)
            approved, reason = answer.strip().lower() in ("y", "yes"), ""
            if not approved:
                self.stdout.write("    reason (optional): ", ending="")
                self.stdout.flush()
                reason = (self.read_line() or "").strip()
            try:
                decided = runs.decide(
                    run.pk, call.call_id, approved=approved, by=self.user, reason=reason
                )
            except runs.DecisionRefused as exc:
                self.stderr.write(str(exc))
                return None
            if decided.resumed:
                return asyncio.run(self.follow(decided.run, decided.run.thread))
        return None

    def read_line(self) -> str | None:
        """A line of input; None at its end (Ctrl-D) or on Ctrl-C."""
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            return None
        return line or None

    async def follow(self, run: Run, thread: Thread) -> Run:
        """Run it, showing what happens. The first Ctrl-C stops the run, as Stop does in the
        browser (what was written is kept); the next one quits."""
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        stopping: list[asyncio.Task[bool]] = []

        def interrupted() -> None:
            if stopping:  # the second Ctrl-C: quit; the run records itself as stopped
                task.cancel()
                return
            self.stderr.write("\nStopping… (Ctrl-C again quits)")
            stopping.append(asyncio.ensure_future(sync_to_async(runs.cancel)(run)))

        loop.add_signal_handler(signal.SIGINT, interrupted)
        try:
            async for event in runs.execute(run.pk):
                self.show(event)
                if isinstance(event, events.ToolResult) and not self.quiet:
                    await self.show_files(event)
        except asyncio.CancelledError:
            raise Quit from None
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            await asyncio.gather(*stopping, return_exceptions=True)
        await thread.arefresh_from_db()
        return await Run.objects.select_related("thread").aget(pk=run.pk)

    def open_thread(self, user: Any, slug: str | None, thread_id: str | None) -> Thread:
        if thread_id:
            try:
                return Thread.objects.select_related("current_assistant").get(
                    pk=thread_id, owner=user
                )
            except (Thread.DoesNotExist, ValueError):
                raise CommandError(f"No thread {thread_id} of {user}.") from None
        # Without --assistant: the entry assistant created first (the demo's Welcome).
        assistant = (
            Assistant.objects.filter(slug=slug)
            if slug
            else Assistant.objects.filter(is_entry=True).order_by("pk")
        )
        first = assistant.first()
        if first is None:
            known = (
                ", ".join(Assistant.objects.values_list("slug", flat=True)) or "none; run seed_demo"
            )
            raise CommandError(f"No assistant {slug or '(entry)'}; known: {known}.")
        return services.start_thread(first, user=user)

    def show(self, event: events.RunEvent) -> None:
        """Text as it streams (the whole message at once with --quiet); every other event as
        its transcript line (chatapp.transcript); only messages with --quiet."""
        write = self.stdout.write
        match event:
            case events.MessageStarted(assistant_name=name):
                self.speaker, self.spoke = name, False
            case events.TextDelta(text=text) if not self.quiet:
                if not self.spoke:
                    write(f"{self.speaker}> ", ending="")
                    self.spoke = True
                write(text, ending="")
            case events.MessageCompleted(content=content, status=status) if content:
                if self.quiet:
                    write(transcript.line(event) or "")
                else:
                    write(" [interrupted]" if status == "incomplete" else "")
            case events.RunFinished(error=error) if error:
                self.stdout.flush()
                self.stderr.write(transcript.line(event) or "")
            case events.Nested():
                return
            case _ if not self.quiet and (said := transcript.line(event)):
                write(said)
            case _:
                return
        self.stdout.flush()
