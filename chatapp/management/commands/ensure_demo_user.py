from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

USERNAME = "demo"
PASSWORD = "demo"


class Command(BaseCommand):
    help = "Create the demo user (demo / demo) for `make run`; development (DEBUG) only."

    def handle(self, *args: Any, **options: Any) -> None:
        # A known password is an open door: never create it on a server that is not in
        # development mode, whatever the caller intended.
        if not settings.DEBUG:
            raise CommandError(
                "Refusing to create the demo user (password 'demo') because DEBUG is off. "
                "Create real users with `manage.py createsuperuser` or the admin."
            )
        users = get_user_model()
        if not users.objects.filter(username=USERNAME).exists():
            users.objects.create_user(USERNAME, password=PASSWORD)
            self.stdout.write(f"Created the user {USERNAME}.")
        self.stdout.write(f"Log in at http://127.0.0.1:8000/ as {USERNAME} / {PASSWORD}")
