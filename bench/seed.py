"""Database work of the load benchmark, run in the configuration being measured (its
DATABASE_URL): `prepare N` migrates, creates N users each with a session and a thread with
the bench assistant, and prints them as JSON; `verify` prints, for each thread, how many
tokens its latest saved answer holds."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402

from chatapp import services  # noqa: E402
from chatapp.models import Assistant, Message, Thread  # noqa: E402

TOKEN = re.compile(r" t\d{10}\.\d{4}")


def prepare(count: int) -> list[dict[str, str]]:
    call_command("migrate", verbosity=0)
    bot, _ = Assistant.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "provider": "openai", "model": "timed"}
    )
    users = get_user_model()
    pages = []
    for index in range(count):
        user, _ = users.objects.get_or_create(username=f"bench{index}")
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        thread = services.start_thread(bot, user=user)
        pages.append({"thread": str(thread.pk), "cookie": f"sessionid={session.session_key}"})
    return pages


def verify() -> dict[str, int]:
    latest = {}
    for thread in Thread.objects.filter(current_assistant__slug="bench"):
        answer = (
            Message.objects.filter(thread=thread, role=Message.Role.ASSISTANT)
            .order_by("-id")
            .values_list("content", flat=True)
            .first()
        )
        if answer is not None:
            latest[str(thread.pk)] = len(TOKEN.findall(" " + answer))
    return latest


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        print(json.dumps(prepare(int(sys.argv[2]))))
    else:
        print(json.dumps(verify()))
