"""Assistants defined as code -> the database.

`plan()` compares the definitions (after the environment's overrides) with the database and
lists the changes without writing anything; `apply()` writes a plan in one transaction;
`sync()` does both. A second sync finds nothing to do and writes nothing.

Handoff and consult rules are matched by (source, tool name): a rule whose tool name changes
is deleted and created (sync_rules.py). What the database has but the definitions no longer
do is left alone unless `prune` is set — an assistant may have been made in the admin, a rule
added by staff — and pruning refuses, writing nothing, to delete an assistant that is still
in use.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, ProtectedError, RestrictedError

from assistants_registry.definitions import AssistantDefinition, DefinitionError
from assistants_registry.registry import registry
from chatapp.definitions.changes import Change, FieldChange, Plan, differences, messages, where
from chatapp.definitions.overrides import apply_overrides
from chatapp.definitions.report import report
from chatapp.definitions.rules import KINDS, apply_rules, existing_rules, plan_rules, wanted_rules
from chatapp.definitions.yaml_files import check_unique, from_data, to_data
from chatapp.models import Assistant, Run, Thread
from chatapp.versions import ASSISTANT_FIELDS

__all__ = [
    "Change",
    "FieldChange",
    "Plan",
    "PruneRefused",
    "apply",
    "plan",
    "sync",
    "sync_definitions",
]


class PruneRefused(DefinitionError):
    """`prune` would delete assistants that are still in use; nothing was written."""


def sync(
    definitions: Iterable[AssistantDefinition],
    *,
    dry_run: bool = False,
    prune: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Plan:
    if dry_run:
        return plan(definitions, prune=prune, overrides=overrides)
    # Plan inside the transaction that applies it, so nothing changes in between.
    with transaction.atomic():
        changes = plan(definitions, prune=prune, overrides=overrides)
        apply(changes)
    return changes


def sync_definitions(definitions: Iterable[AssistantDefinition]) -> list[str]:
    """Sync without pruning; a line per change made, rule left alone or warning (seed_demo
    prints them)."""
    return report(sync(definitions))


# --- planning ----------------------------------------------------------------------------------


def plan(
    definitions: Iterable[AssistantDefinition],
    *,
    prune: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Plan:
    """What sync would change; DefinitionError (every problem found) if it cannot."""
    definitions = [validated(definition) for definition in definitions]
    check_unique(definitions)
    definitions = apply_overrides(definitions, overrides)
    existing = {assistant.slug: assistant for assistant in Assistant.objects.all()}
    rules = {kind: existing_rules(kind) for kind in KINDS}
    defined = {definition.slug for definition in definitions}

    result, errors = Plan(), []
    for definition in definitions:
        try:
            result += assistant_changes(definition, existing.get(definition.slug))
            wanted = wanted_rules(definition, defined | set(existing))
        except DefinitionError as exc:
            errors.append(str(exc))
            continue
        for kind, values in wanted.items():
            current = rules[kind][definition.slug]
            plan_rules(kind, definition.slug, values, current, prune=prune, into=result)
        result.warnings += warnings(definition)
    if errors:
        raise DefinitionError("\n".join(errors))
    if prune:
        doomed = sorted(set(existing) - defined)
        refuse_if_in_use(doomed, definitions)
        for slug in doomed:
            for kind in KINDS:
                result += [
                    Change("delete", kind.object, slug, n) for n in sorted(rules[kind][slug])
                ]
            result.append(Change("delete", "assistant", slug))
    return result


def validated(definition: AssistantDefinition) -> AssistantDefinition:
    """Definitions from Python get the same type checks as those from YAML files."""
    label = f"assistant {definition.slug!r}"
    checked = from_data(to_data(definition), origin=definition.origin or "definitions", label=label)
    return dataclasses.replace(checked, origin=definition.origin)


def assistant_changes(definition: AssistantDefinition, current: Assistant | None) -> list[Change]:
    values = {name: getattr(definition, name) for name in ASSISTANT_FIELDS}
    values["tools"] = list(definition.tools)
    values["ask_before"] = list(definition.ask_before)
    try:
        Assistant(slug=definition.slug, **values).full_clean(
            validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        raise DefinitionError(f"{where(definition)}: {messages(exc)}") from None
    if current is None:
        return [Change("create", "assistant", definition.slug, values=values)]
    fields = differences({name: getattr(current, name) for name in values}, values)
    return [Change("update", "assistant", definition.slug, fields=fields)] if fields else []


def warnings(definition: AssistantDefinition) -> list[str]:
    """Not errors: a tool may live in an app that is not installed here."""
    found = [
        f"{where(definition)}: tool {name!r} is not in this installation's tool registry"
        for name in definition.tools
        if name not in registry
    ]
    found += [
        f"{where(definition)}: a handoff follows tool {handoff.after_tool!r}, "
        "which is not among its tools"
        for handoff in definition.handoffs
        if handoff.trigger == "after_tool" and handoff.after_tool not in definition.tools
    ]
    return found


def refuse_if_in_use(doomed: list[str], kept: list[AssistantDefinition]) -> None:
    """PruneRefused naming every assistant that is still needed, and why."""
    reasons: dict[str, list[str]] = defaultdict(list)
    for model, key, noun in (
        (Thread, "current_assistant__slug", "on it"),
        (Run, "assistant__slug", "that used it"),
    ):
        counts = (
            model.objects.filter(**{f"{key}__in": doomed})
            .order_by()
            .values(key)
            .annotate(n=Count("pk"))
            .values_list(key, "n")
        )
        for slug, n in counts:
            reasons[slug].append(f"{n} {model.__name__.lower()}{'s' * (n != 1)} {noun}")
    # Only the rules kept assistants define count: the others are deleted by the same prune.
    for definition in kept:
        for handoff in definition.handoffs:
            if handoff.target in doomed:
                reasons[handoff.target].append(f"a handoff of {definition.slug} targets it")
        for consult in definition.consults:
            if consult.specialist in doomed:
                reasons[consult.specialist].append(f"{definition.slug} consults it")
    if reasons:
        raise PruneRefused(
            "Cannot prune, nothing was written; still in use: "
            + "; ".join(f"{slug} ({', '.join(why)})" for slug, why in sorted(reasons.items()))
        )


# --- writing -----------------------------------------------------------------------------------


@transaction.atomic
def apply(changes: Iterable[Change]) -> None:
    """Write a plan: assistants first (rules need them), then rules, then deletions."""
    changes = list(changes)

    def of(kind: str, obj: str) -> list[Change]:
        return [c for c in changes if c.kind == kind and c.object == obj]

    for change in of("create", "assistant"):
        Assistant.objects.create(slug=change.slug, **change.values)
    for change in of("update", "assistant"):
        assistant = Assistant.objects.get(slug=change.slug)
        for diff in change.fields:
            setattr(assistant, diff.name, diff.after)
        assistant.save()
    assistants = {assistant.slug: assistant for assistant in Assistant.objects.all()}
    apply_rules(changes, assistants)
    if doomed := [change.slug for change in of("delete", "assistant")]:
        try:
            Assistant.objects.filter(slug__in=doomed).delete()
        except (ProtectedError, RestrictedError) as exc:
            # Something refuse_if_in_use does not know of still points at them; the
            # transaction rolls back, so this too writes nothing.
            raise PruneRefused(f"Cannot prune, nothing was written: {exc.args[0]}") from exc
