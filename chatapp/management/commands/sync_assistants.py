"""`manage.py sync_assistants [--dry-run] [--prune] [--file PATH ...]`: write the assistants
defined as code into this database, printing each change."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from assistants_registry.definitions import DefinitionError
from chatapp.definitions.discovery import discover
from chatapp.definitions.report import report, summary
from chatapp.definitions.sync import sync
from chatapp.definitions.yaml_files import load_files


class Command(BaseCommand):
    help = (
        "Sync the assistants defined as code (each app's assistants.py and assistants.yaml, "
        "and CHATAPP_ASSISTANT_FILES) into the database, with CHATAPP_ASSISTANT_OVERRIDES."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would change; write nothing"
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="also delete assistants and rules that are no longer defined "
            "(refused, writing nothing, for assistants still in use)",
        )
        parser.add_argument(
            "--file",
            action="extend",
            nargs="+",
            default=[],
            metavar="PATH",
            help="sync only these YAML files instead of every discovered definition",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            definitions = load_files(options["file"]) if options["file"] else discover()
            plan = sync(definitions, dry_run=options["dry_run"], prune=options["prune"])
        except DefinitionError as exc:
            raise CommandError(str(exc)) from None
        for line in report(plan):
            self.stdout.write(self.style.WARNING(line) if line.startswith("!") else line)
        self.stdout.write(summary(plan))
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written.")
