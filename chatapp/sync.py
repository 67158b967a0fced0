"""Assistants defined as code -> the database.

`plan()` compares the definitions (after the environment's overrides) with the database and
lists the changes without writing anything; `apply()` writes a plan in one transaction;
`sync()` does both. A second sync finds nothing to do and writes nothing.

Rules are matched by (source, tool name): a rule whose tool name changes is deleted and
created. What the database has but the definitions no longer do is left alone unless
`prune` is set — an assistant may have been made in the admin, a rule added by staff — and
pruning refuses, writing nothing, to delete an assistant that is still in use.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, ProtectedError, RestrictedError

from assistants_registry.definitions import AssistantDefinition, DefinitionError
from assistants_registry.registry import registry
from chatapp.definitions_io import check_unique, from_data, to_data
from chatapp.models import Assistant, ConsultRule, HandoffRule, Run, Thread
from chatapp.overrides import apply_overrides
from chatapp.sync_report import report
from chatapp.versions import ASSISTANT_FIELDS, RULE_FIELDS


class PruneRefused(DefinitionError):
    """`prune` would delete assistants that are still in use; nothing was written."""


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    kind: Literal["create", "update", "delete"]
    object: Literal["assistant", "rule"]
    slug: str  # the assistant; for a rule, its source
    tool_name: str = ""  # rules only
    fields: tuple[FieldChange, ...] = ()  # updates: what differs, before → after
    # Creates: every value to write (a rule's "target" is a slug).
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
        return (
            f"rule {self.slug}.{self.tool_name}"
            if self.object == "rule"
            else f"assistant {self.slug}"
        )


class Plan(list[Change]):
    """The changes to make, plus what sync noticed and will not do: rules no longer defined
    (deleted only with prune) and warnings (tools this installation does not have)."""

    def __init__(self, changes: Iterable[Change] = ()) -> None:
        super().__init__(changes)
        self.left_alone: list[Change] = []
        self.warnings: list[str] = []


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
    rules: dict[str, dict[str, HandoffRule]] = defaultdict(dict)
    for rule in HandoffRule.objects.select_related("source", "target"):
        rules[rule.source.slug][rule.tool_name] = rule
    defined = {definition.slug for definition in definitions}

    result, errors = Plan(), []
    for definition in definitions:
        try:
            result += assistant_changes(definition, existing.get(definition.slug))
            wanted = wanted_rules(definition, defined | set(existing))
        except DefinitionError as exc:
            errors.append(str(exc))
            continue
        current = rules[definition.slug]
        for name in sorted(set(current) - set(wanted)):
            gone = Change("delete", "rule", definition.slug, name)
            (result if prune else result.left_alone).append(gone)
        for name, values in wanted.items():
            result += rule_changes(definition.slug, name, values, current.get(name))
        result.warnings += warnings(definition)
    if errors:
        raise DefinitionError("\n".join(errors))
    if prune:
        doomed = sorted(set(existing) - defined)
        refuse_if_in_use(doomed, definitions)
        for slug in doomed:
            result += [Change("delete", "rule", slug, name) for name in sorted(rules[slug])]
            result.append(Change("delete", "assistant", slug))
    return result


def where(definition: AssistantDefinition) -> str:
    origin = f"{definition.origin}: " if definition.origin else ""
    return f"{origin}assistant {definition.slug!r}"


def validated(definition: AssistantDefinition) -> AssistantDefinition:
    """Definitions from Python get the same type checks as those from YAML files."""
    label = f"assistant {definition.slug!r}"
    checked = from_data(to_data(definition), origin=definition.origin or "definitions", label=label)
    return dataclasses.replace(checked, origin=definition.origin)


def assistant_changes(definition: AssistantDefinition, current: Assistant | None) -> list[Change]:
    values = {name: getattr(definition, name) for name in ASSISTANT_FIELDS}
    values["tools"] = list(definition.tools)
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


def wanted_rules(definition: AssistantDefinition, known: set[str]) -> dict[str, dict[str, Any]]:
    """The rules the definition asks for, by tool name, each checked as the admin would."""
    wanted: dict[str, dict[str, Any]] = {}
    for order, handoff in enumerate(definition.handoffs):
        if handoff.target not in known:
            raise DefinitionError(
                f"{where(definition)}: hands off to {handoff.target!r}, which is neither "
                "defined nor in the database."
            )
        values = {name: getattr(handoff, name) for name in RULE_FIELDS if name != "order"}
        values |= {"required_metadata": list(handoff.required_metadata), "order": order}
        rule = HandoffRule(target=Assistant(slug=handoff.target), **values)
        name = values["tool_name"] = handoff.tool_name or rule.default_tool_name()
        rule.tool_name = name
        try:
            rule.full_clean(
                exclude=["source", "target"], validate_unique=False, validate_constraints=False
            )
        except ValidationError as exc:
            raise DefinitionError(f"{where(definition)}: rule {name}: {messages(exc)}") from None
        if name in wanted:
            raise DefinitionError(f"{where(definition)}: two handoffs are named {name!r}.")
        wanted[name] = {"target": handoff.target, **values}
    return wanted


def rule_changes(
    slug: str, name: str, values: dict[str, Any], current: HandoffRule | None
) -> list[Change]:
    if current is None:
        return [Change("create", "rule", slug, name, values=values)]
    before = {key: getattr(current, key) for key in values if key != "target"}
    fields = differences({"target": current.target.slug, **before}, values)
    return [Change("update", "rule", slug, name, fields=fields)] if fields else []


def differences(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(name, before[name], value)
        for name, value in after.items()
        if before[name] != value
    )


def messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in exc.message_dict.items())
    return " ".join(exc.messages)


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
    for definition in kept:
        for handoff in definition.handoffs:
            if handoff.target in doomed:
                reasons[handoff.target].append(f"a handoff of {definition.slug} targets it")
    # Consult rules are not defined as code: those of kept assistants stay, and need theirs.
    consults = ConsultRule.objects.filter(specialist__slug__in=doomed).exclude(
        source__slug__in=doomed
    )
    for source, specialist in consults.values_list("source__slug", "specialist__slug"):
        reasons[specialist].append(f"{source} consults it")
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
    for change in of("delete", "rule"):
        HandoffRule.objects.filter(source__slug=change.slug, tool_name=change.tool_name).delete()
    for change in of("create", "rule"):
        values = dict(change.values)
        target = assistants[values.pop("target")]
        HandoffRule.objects.create(source=assistants[change.slug], target=target, **values)
    for change in of("update", "rule"):
        rule = HandoffRule.objects.get(source__slug=change.slug, tool_name=change.tool_name)
        for diff in change.fields:
            if diff.name == "target":
                rule.target = assistants[diff.after]
            else:
                setattr(rule, diff.name, diff.after)
        rule.save()
    if doomed := [change.slug for change in of("delete", "assistant")]:
        # Their own consult rules first: one doomed assistant may consult another (PROTECT).
        ConsultRule.objects.filter(source__slug__in=doomed).delete()
        try:
            Assistant.objects.filter(slug__in=doomed).delete()
        except (ProtectedError, RestrictedError) as exc:
            # Something refuse_if_in_use does not know of still points at them; the
            # transaction rolls back, so this too writes nothing.
            raise PruneRefused(f"Cannot prune, nothing was written: {exc.args[0]}") from exc
