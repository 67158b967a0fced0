"""The database's assistants, handoff rules and consult rules as definitions, for export.

The inverse of what `chatapp.definitions.sync` writes: syncing these definitions into an empty
database and reading them back gives equal definitions, so export → sync → export is stable.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from assistants_registry.definitions import (
    ASSISTANT_SETTINGS,
    CONSULT_SETTINGS,
    HANDOFF_SETTINGS,
    AssistantDefinition,
)
from chatapp.definitions.yaml_files import definition_of
from chatapp.models import Assistant, ConsultRule, HandoffRule


def from_database() -> list[AssistantDefinition]:
    rules: dict[int, list[HandoffRule]] = defaultdict(list)
    for rule in HandoffRule.objects.select_related("source", "target").order_by(
        "order", "tool_name"
    ):
        rules[rule.source_id].append(rule)
    consults: dict[int, list[ConsultRule]] = defaultdict(list)
    for consult in ConsultRule.objects.select_related("specialist").order_by("order", "tool_name"):
        consults[consult.source_id].append(consult)
    return [
        definition_of(
            AssistantDefinition,
            {
                "slug": assistant.slug,
                **{name: getattr(assistant, name) for name in ASSISTANT_SETTINGS},
                "handoffs": [handoff_data(rule) for rule in rules[assistant.pk]],
                "consults": [consult_data(rule) for rule in consults[assistant.pk]],
                "origin": "the database",
            },
        )
        for assistant in Assistant.objects.order_by("slug")
    ]


def handoff_data(rule: HandoffRule) -> dict[str, Any]:
    return {
        "target": rule.target.slug,
        **{name: getattr(rule, name) for name in HANDOFF_SETTINGS},
        "tool_name": implicit_default(rule),
    }


def consult_data(rule: ConsultRule) -> dict[str, Any]:
    return {
        "specialist": rule.specialist.slug,
        **{name: getattr(rule, name) for name in CONSULT_SETTINGS},
        "tool_name": implicit_default(rule),
    }


def implicit_default(rule: HandoffRule | ConsultRule) -> str:
    """The default tool name is left implicit, as a developer would write it."""
    return "" if rule.tool_name == rule.default_tool_name() else rule.tool_name
