from __future__ import annotations

from django.apps import AppConfig


class DataAnalystConfig(AppConfig):
    """A third example workflow: one assistant with the built-in code interpreter
    (`run_python`, chatapp.sandbox) that reads the chat's files and answers with pictures."""

    name = "assistants_registry.data_analyst"
    label = "data_analyst"
    verbose_name = "Data analyst"
