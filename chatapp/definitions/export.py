"""The database's assistants, handoff rules and consult rules as definitions, for export.

The inverse of what `chatapp.definitions.sync` writes: syncing these definitions into an empty
database and reading them back gives equal definitions, so export → sync → export is stable.
"""

from __future__ import annotations

from collections import defaultdict

from assistants_registry.definitions import (
    AssistantDefinition,
    ConsultDefinition,
    HandoffDefinition,
)
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
        AssistantDefinition(
            slug=assistant.slug,
            name=assistant.name,
            description=assistant.description,
            instructions=assistant.instructions,
            tools=tuple(assistant.tools),
            handoffs=tuple(handoff_from_rule(rule) for rule in rules[assistant.pk]),
            consults=tuple(consult_from_rule(rule) for rule in consults[assistant.pk]),
            provider=assistant.provider,
            model=assistant.model,
            temperature=assistant.temperature,
            max_steps=assistant.max_steps,
            is_entry=assistant.is_entry,
            origin="the database",
        )
        for assistant in Assistant.objects.order_by("slug")
    ]


def handoff_from_rule(rule: HandoffRule) -> HandoffDefinition:
    return HandoffDefinition(
        target=rule.target.slug,
        trigger=rule.trigger,
        after_tool=rule.after_tool,
        # The default name is left implicit, as a developer would write it.
        tool_name="" if rule.tool_name == rule.default_tool_name() else rule.tool_name,
        description=rule.description,
        parameters=rule.parameters,
        required_metadata=tuple(rule.required_metadata),
        history=rule.history,
        history_last_n=rule.history_last_n,
        extra_instructions=rule.extra_instructions,
        respond_immediately=rule.respond_immediately,
        enabled=rule.enabled,
    )


def consult_from_rule(rule: ConsultRule) -> ConsultDefinition:
    return ConsultDefinition(
        specialist=rule.specialist.slug,
        tool_name="" if rule.tool_name == rule.default_tool_name() else rule.tool_name,
        description=rule.description,
        enabled=rule.enabled,
    )
