from __future__ import annotations

from django.apps import AppConfig


class ChatappConfig(AppConfig):
    name = "chatapp"
    verbose_name = "Chat"

    def ready(self) -> None:
        from assistants_registry.registry import registry
        from chatapp import files
        from chatapp.sandbox.interpreter import run_python
        from chatapp.versions import connect_signals
        from chatapp.web import signals

        connect_signals()
        signals.connect()
        files.connect_signals()
        registry.register(run_python)  # built in, but no assistant has it until given it
