from __future__ import annotations

from django.apps import AppConfig


class SiteEditorConfig(AppConfig):
    name = "assistants_registry.site_editor"
    label = "site_editor"
    verbose_name = "Site editor"

    def ready(self) -> None:
        from assistants_registry.registry import registry
        from assistants_registry.site_editor.tools import TOOLS

        registry.register(*TOOLS)
