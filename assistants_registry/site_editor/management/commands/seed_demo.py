from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from assistants_registry.site_editor.assistants import ASSISTANTS, PAGES
from assistants_registry.site_editor.models import Page
from chatapp.sync import sync_definitions


class Command(BaseCommand):
    help = "Create the site-editor demo: its pages and its assistants (safe to run again)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for page in PAGES:
            _, created = Page.objects.get_or_create(slug=page["slug"], defaults=page)
            if created:
                self.stdout.write(f"created page {page['slug']}")
        for line in sync_definitions(ASSISTANTS):
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("The site-editor demo is ready."))
