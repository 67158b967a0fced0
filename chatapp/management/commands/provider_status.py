from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from chatapp.providers.openai import redacted
from chatapp.sandbox import bubblewrap


class Command(BaseCommand):
    help = (
        "Say which model provider assistants use by default, and whether the code interpreter "
        "(run_python) can run here."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.CHATAPP_DEFAULT_PROVIDER == "offline":
            self.stdout.write(
                "Model: the built-in offline model (no OPENAI_API_KEY or OPENAI_BASE_URL is set)."
            )
        else:
            # Printed where servers log: the address only, never credentials in the URL.
            where = (
                redacted(settings.OPENAI_BASE_URL) if settings.OPENAI_BASE_URL else "api.openai.com"
            )
            self.stdout.write(f"Model: {settings.OPENAI_MODEL} through {where}.")
        try:
            asyncio.run(bubblewrap.check())
        except bubblewrap.SandboxUnavailable as exc:
            self.stdout.write(f"Code interpreter: unavailable. {exc}")
        else:
            self.stdout.write("Code interpreter: ready (bubblewrap sandbox).")
