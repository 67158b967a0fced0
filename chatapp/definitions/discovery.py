"""Find the assistants defined as code, the way Django's autodiscover finds admin modules:
every installed app's `assistants` module (its `ASSISTANTS`) and `assistants.yaml`, then the
YAML files listed in `settings.CHATAPP_ASSISTANT_FILES`. A slug defined twice is an error —
which of two definitions should win is not something to guess."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path

from django.apps import apps
from django.conf import settings

from assistants_registry.definitions import AssistantDefinition, DefinitionError
from chatapp.definitions.yaml_files import check_unique, load_file

MODULE = "assistants"
YAML_FILE = "assistants.yaml"


def discover() -> list[AssistantDefinition]:
    definitions: list[AssistantDefinition] = []
    for app_config in apps.get_app_configs():
        definitions += from_module(app_config.module, f"{app_config.name}.{MODULE}")
        path = Path(app_config.path) / YAML_FILE
        if path.is_file():
            definitions += load_file(path)
    for path in setting_files():
        definitions += load_file(path)
    check_unique(definitions)
    return definitions


def from_module(package: object, name: str) -> list[AssistantDefinition]:
    """`ASSISTANTS` of the module `name`; nothing if there is no such module, or if it has
    no `ASSISTANTS` (a third-party app may well have an unrelated module of that name)."""
    # A plain module (no __path__) has no submodules; find_spec would raise on it.
    if not hasattr(package, "__path__") or importlib.util.find_spec(name) is None:
        return []
    assistants = getattr(importlib.import_module(name), "ASSISTANTS", None)
    if assistants is None:
        return []
    if isinstance(assistants, AssistantDefinition) or not all(
        isinstance(item, AssistantDefinition) for item in assistants
    ):
        raise DefinitionError(f"{name}: ASSISTANTS must be a sequence of AssistantDefinition.")
    return [item if item.origin else dataclasses.replace(item, origin=name) for item in assistants]


def setting_files() -> list[Path]:
    """CHATAPP_ASSISTANT_FILES; a relative path is relative to the project (BASE_DIR)."""
    base = Path(getattr(settings, "BASE_DIR", Path.cwd()))
    return [base / path for path in getattr(settings, "CHATAPP_ASSISTANT_FILES", [])]
