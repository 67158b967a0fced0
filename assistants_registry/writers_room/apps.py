from __future__ import annotations

from django.apps import AppConfig


class WritersRoomConfig(AppConfig):
    """A second example workflow: no models and no tools, only assistants (assistants.py) —
    the Writer consults the Critic instead of handing the thread over."""

    name = "assistants_registry.writers_room"
    label = "writers_room"
    verbose_name = "Writers' room"
