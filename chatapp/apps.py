from __future__ import annotations

from django.apps import AppConfig


class ChatappConfig(AppConfig):
    name = "chatapp"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chatapp.versions import connect_signals
        from chatapp.web import signals

        connect_signals()
        signals.connect()
