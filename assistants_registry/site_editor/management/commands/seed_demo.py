from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from assistants_registry.definitions import DefinitionError
from assistants_registry.site_editor.assistants import PAGES
from assistants_registry.site_editor.models import Page
from chatapp.definitions.discovery import discover
from chatapp.definitions.sync import sync_definitions


class Command(BaseCommand):
    help = (
        "Create the demo: the site editor's pages and every assistant defined as code "
        "(the site editor, the writers' room, ...). Safe to run again."
    )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for page in PAGES:
            _, created = Page.objects.get_or_create(slug=page["slug"], defaults=page)
            if created:
                self.stdout.write(f"created page {page['slug']}")
        # Every discovered definition, not only the site editor's: each example workflow
        # lives in its own app, and the demo should offer all of them.
        try:
            lines = sync_definitions(discover())
        except DefinitionError as exc:
            raise CommandError(str(exc)) from None
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("The demo is ready."))
