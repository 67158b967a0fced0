"""A terminal chat over the same run loop as the browser: `manage.py chat [assistant-slug]`."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chatapp import services
from chatapp.models import Assistant, Thread
from chatapp.runs import describe_metadata, events, say
from chatapp.services import MessageRejected, ThreadBusy


class Command(BaseCommand):
    help = "Chat with the assistants in the terminal. An empty line or Ctrl-D ends the chat."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("assistant", nargs="?", help="slug of the first assistant")
        parser.add_argument("--user", default="cli", help="whose thread it is (created if new)")
        parser.add_argument("--thread", help="continue this thread (its id)")
        parser.add_argument("--quiet", action="store_true", help="print only the messages")

    def handle(self, *args: Any, **options: Any) -> None:
        self.quiet = options["quiet"]
        user, _ = get_user_model().objects.get_or_create(username=options["user"])
        thread = self.open_thread(user, options["assistant"], options["thread"])
        self.stdout.write(f"Thread {thread.pk} with {thread.current_assistant.name}.")
        while True:
            self.stdout.write("you> ", ending="")
            self.stdout.flush()
            line = sys.stdin.readline()
            if not line.strip():
                break
            try:
                run = say(thread, line, on_event=self.show)
            except (MessageRejected, ThreadBusy) as exc:
                self.stderr.write(str(exc))
                continue
            if run.error:
                self.stderr.write(f"[{run.status}] {run.error}")

    def open_thread(self, user: Any, slug: str | None, thread_id: str | None) -> Thread:
        if thread_id:
            try:
                return Thread.objects.select_related("current_assistant").get(
                    pk=thread_id, owner=user
                )
            except (Thread.DoesNotExist, ValueError):
                raise CommandError(f"No thread {thread_id} of {user}.") from None
        assistant = (
            Assistant.objects.filter(slug=slug) if slug else Assistant.objects.filter(is_entry=True)
        )
        first = assistant.first()
        if first is None:
            known = (
                ", ".join(Assistant.objects.values_list("slug", flat=True)) or "none; run seed_demo"
            )
            raise CommandError(f"No assistant {slug or '(entry)'}; known: {known}.")
        return services.start_thread(first, user=user)

    def show(self, event: events.RunEvent) -> None:
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
                    write(f"{self.speaker}> {content}")
                else:
                    write(" [interrupted]" if status == "incomplete" else "")
            case events.ToolCalled(name=name, arguments=arguments) if not self.quiet:
                write(f"  → {name}({arguments})")
            case events.ToolResult(output=output, is_error=is_error) if not self.quiet:
                write(f"  {'✗' if is_error else '←'} {output}")
            case events.Handoff(source_name=source, target_name=target, metadata=facts) if (
                not self.quiet
            ):
                write(
                    f"  ⇢ {source} → {target}" + (f" · {describe_metadata(facts)}" if facts else "")
                )
            case _:
                return
        self.stdout.flush()
