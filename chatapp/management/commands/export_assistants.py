"""`manage.py export_assistants [--output PATH]`: the database's assistants with their handoff
and consult rules as YAML, in the format sync_assistants --file reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chatapp.definitions.export import from_database
from chatapp.definitions.yaml_files import dump_yaml


class Command(BaseCommand):
    help = (
        "Write the database's assistants with their handoff and consult rules as YAML "
        "(to stdout by default)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", metavar="PATH", help="write to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        definitions = from_database()
        text = dump_yaml(definitions)
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stdout.write(f"Wrote {len(definitions)} assistants to {options['output']}.")
        else:
            self.stdout.write(text, ending="")
