from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
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
        user = users.objects.filter(username=USERNAME).first()
        if user is None:
            user = users.objects.create_user(USERNAME, password=PASSWORD)
            self.stdout.write(f"Created the user {USERNAME}.")
        # What the demo needs, and no more: the site editor's pages (a new user has none).
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="site_editor",
                codename__in=["view_page", "change_page", "publish_page"],
            )
        )
        self.stdout.write(f"Log in at http://127.0.0.1:8000/ as {USERNAME} / {PASSWORD}")
