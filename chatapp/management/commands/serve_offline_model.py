"""Serve the offline model as an OpenAI-compatible API, e.g. for OPENAI_BASE_URL or benchmarks.

python manage.py serve_offline_model --port 8100 --delay 0.02
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chatapp.providers.offline.server import OfflineModelServer


class Command(BaseCommand):
    help = "Serve the built-in offline model as an OpenAI-compatible /v1/chat/completions API."
    requires_system_checks: list[str] = []  # it touches neither models nor the database

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8100, help="Port (default 8100).")
        parser.add_argument("--host", default="127.0.0.1", help="Address (default 127.0.0.1).")
        parser.add_argument(
            "--delay",
            type=float,
            default=None,
            help="Seconds between two words (default: the OFFLINE_MODEL_DELAY setting).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            asyncio.run(self._serve(options["host"], options["port"], options["delay"]))
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    async def _serve(self, host: str, port: int, delay: float | None) -> None:
        server = OfflineModelServer(delay=delay)
        await server.start(host, port)
        self.stdout.write(f"Offline model serving an OpenAI-compatible API at {server.url}")
        self.stdout.write(f"Use it with OPENAI_BASE_URL={server.url}. Quit with CONTROL-C.")
        self.stdout.flush()
        try:
            await asyncio.Event().wait()  # until interrupted
        finally:
            await server.close()
