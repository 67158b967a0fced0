"""Per-environment overrides of assistants defined as code, without editing the definitions:
`settings.CHATAPP_ASSISTANT_OVERRIDES = {"page-editor": {"model": "gpt-5-mini"}, "*": {...}}`.

`"*"` applies to every assistant being synced, a slug's own entry on top of it. Only an
assistant's own settings may be overridden — not its slug, its handoffs or its consults — and
a field or a slug that does not exist is an error: a typo must not silently leave production
on the wrong model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from assistants_registry.definitions import ASSISTANT_SETTINGS, AssistantDefinition, DefinitionError
from chatapp.definitions.discovery import discover
from chatapp.definitions.yaml_files import from_data, to_data
from chatapp.models import Assistant

SETTING = "CHATAPP_ASSISTANT_OVERRIDES"
ALL = "*"
OVERRIDABLE = ASSISTANT_SETTINGS


def apply_overrides(
    definitions: Iterable[AssistantDefinition],
    overrides: Mapping[str, Any] | None = None,
) -> list[AssistantDefinition]:
    """The definitions with the overrides applied (by default, the setting's)."""
    definitions = list(definitions)
    if overrides is None:
        overrides = getattr(settings, SETTING, {}) or {}
    check_shape(overrides)
    check_slugs(overrides, {definition.slug for definition in definitions})
    result = []
    for definition in definitions:
        changes = {**overrides.get(ALL, {}), **overrides.get(definition.slug, {})}
        if not changes:
            result.append(definition)
            continue
        # Through the same validation as a file, so a wrong type is reported as such.
        label = f"assistant {definition.slug!r}"
        changed = from_data({**to_data(definition), **changes}, origin=SETTING, label=label)
        result.append(dataclasses.replace(changed, origin=definition.origin))
    return result


def check_shape(overrides: Any) -> None:
    if not isinstance(overrides, Mapping):
        raise DefinitionError(f"{SETTING} must be a mapping of assistant slugs to fields.")
    for slug, fields in overrides.items():
        if not isinstance(fields, Mapping):
            raise DefinitionError(f"{SETTING}[{slug!r}] must be a mapping of fields to values.")
        if unknown := sorted(set(fields) - set(OVERRIDABLE)):
            raise DefinitionError(
                f"{SETTING}[{slug!r}]: {', '.join(map(repr, unknown))} cannot be overridden "
                f"(these can: {', '.join(OVERRIDABLE)})."
            )


def check_slugs(overrides: Mapping[str, Any], defined: set[str]) -> None:
    """A slug must name an assistant: one being synced, one in the database, or one defined
    somewhere in the project (so that syncing one file does not trip over the overrides of
    assistants defined in another)."""
    unknown = set(overrides) - {ALL} - defined
    if unknown:
        unknown -= set(Assistant.objects.filter(slug__in=unknown).values_list("slug", flat=True))
    if unknown:
        unknown -= {definition.slug for definition in discover()}
    if unknown:
        raise DefinitionError(
            f"{SETTING} names assistants that are not defined: {', '.join(sorted(unknown))}."
        )
