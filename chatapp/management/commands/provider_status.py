from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Say which model provider assistants use by default, and how to change it."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.CHATAPP_DEFAULT_PROVIDER == "offline":
            self.stdout.write(
                "Model: the built-in offline model (no OPENAI_API_KEY or OPENAI_BASE_URL is set)."
            )
        else:
            where = settings.OPENAI_BASE_URL or "api.openai.com"
            self.stdout.write(f"Model: {settings.OPENAI_MODEL} through {where}.")
