"""Write assistants defined as code into the database: create what is missing, update what
differs, leave the rest alone. Running it twice changes nothing the second time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from django.db import transaction

from assistants_registry.definitions import AssistantDefinition
from chatapp.models import Assistant, HandoffRule

ASSISTANT_FIELDS = (
    "name",
    "description",
    "instructions",
    "provider",
    "model",
    "temperature",
    "max_steps",
    "is_entry",
)


@transaction.atomic
def sync_definitions(definitions: Iterable[AssistantDefinition]) -> list[str]:
    """Returns a line for each change made."""
    definitions = list(definitions)
    changes: list[str] = []
    assistants: dict[str, Assistant] = {}
    for definition in definitions:
        values = {name: getattr(definition, name) for name in ASSISTANT_FIELDS}
        values["tools"] = list(definition.tools)
        assistant, created = Assistant.objects.get_or_create(slug=definition.slug, defaults=values)
        if created:
            changes.append(f"created assistant {definition.slug}")
        elif any(getattr(assistant, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(assistant, key, value)
            assistant.save()
            changes.append(f"updated assistant {definition.slug}")
        assistants[definition.slug] = assistant
    for definition in definitions:
        source = assistants[definition.slug]
        for order, handoff in enumerate(definition.handoffs):
            target = assistants.get(handoff.target) or Assistant.objects.get(slug=handoff.target)
            values = asdict(handoff)
            del values["target"]
            values["required_metadata"] = list(handoff.required_metadata)
            values["order"] = order
            rule = HandoffRule(source=source, target=target, **values)
            rule.tool_name = values["tool_name"] = rule.tool_name or rule.default_tool_name()
            rule.full_clean(exclude=["source", "target"], validate_unique=False)
            existing = HandoffRule.objects.filter(source=source, tool_name=rule.tool_name).first()
            if existing is None:
                rule.save()
                changes.append(f"created rule {rule}")
            elif any(getattr(existing, k) != getattr(rule, k) for k in (*values, "target_id")):
                rule.pk = existing.pk
                rule.save()
                changes.append(f"updated rule {rule}")
    return changes
