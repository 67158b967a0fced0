"""The rules of assistants defined as code — handoff rules and consult rules — planned and
written alike: matched by (source, tool name), each checked as the admin would check it, and
the assistant at the other end named by its slug.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import models

from assistants_registry.definitions import AssistantDefinition, DefinitionError
from chatapp.definitions.changes import Change, Plan, differences, messages, where
from chatapp.models import Assistant, ConsultRule, HandoffRule
from chatapp.versions import CONSULT_FIELDS, RULE_FIELDS

Rules = dict[str, dict[str, Any]]  # tool name -> the values to write


@dataclass(frozen=True)
class RuleKind:
    object: Literal["rule", "consult"]
    model: type[models.Model]
    other: str  # the field naming the assistant at the other end


HANDOFFS = RuleKind("rule", HandoffRule, "target")
CONSULTS = RuleKind("consult", ConsultRule, "specialist")
KINDS = (HANDOFFS, CONSULTS)


def existing_rules(kind: RuleKind) -> defaultdict[str, dict[str, Any]]:
    """The database's rules of this kind: source slug -> tool name -> rule."""
    found: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    for rule in kind.model.objects.select_related("source", kind.other):
        found[rule.source.slug][rule.tool_name] = rule
    return found


def wanted_rules(definition: AssistantDefinition, known: set[str]) -> dict[RuleKind, Rules]:
    handoffs = wanted_handoffs(definition, known)
    # A consult tool named like one of the assistant's tools or handoff tools would never be
    # offered (the engine keeps the first of two same-named tools): refuse it here instead.
    offered = set(definition.tools) | {
        name for name, values in handoffs.items() if values["trigger"] == "tool"
    }
    return {HANDOFFS: handoffs, CONSULTS: wanted_consults(definition, known, offered)}


def wanted_handoffs(definition: AssistantDefinition, known: set[str]) -> Rules:
    wanted: Rules = {}
    for order, handoff in enumerate(definition.handoffs):
        if handoff.target not in known:
            raise DefinitionError(
                f"{where(definition)}: hands off to {handoff.target!r}, which is neither "
                "defined nor in the database."
            )
        values = {name: getattr(handoff, name) for name in RULE_FIELDS if name != "order"}
        values |= {"required_metadata": list(handoff.required_metadata), "order": order}
        rule = HandoffRule(target=Assistant(slug=handoff.target), **values)
        name = checked(definition, rule, handoff.tool_name, values, HANDOFFS)
        if name in wanted:
            raise DefinitionError(f"{where(definition)}: two handoffs are named {name!r}.")
        wanted[name] = {"target": handoff.target, **values}
    return wanted


def wanted_consults(definition: AssistantDefinition, known: set[str], offered: set[str]) -> Rules:
    wanted: Rules = {}
    for order, consult in enumerate(definition.consults):
        if consult.specialist == definition.slug:
            raise DefinitionError(f"{where(definition)}: consults itself.")
        if consult.specialist not in known:
            raise DefinitionError(
                f"{where(definition)}: consults {consult.specialist!r}, which is neither "
                "defined nor in the database."
            )
        values = {name: getattr(consult, name) for name in CONSULT_FIELDS if name != "order"}
        values["order"] = order
        rule = ConsultRule(specialist=Assistant(slug=consult.specialist), **values)
        name = checked(definition, rule, consult.tool_name, values, CONSULTS)
        if name in wanted:
            raise DefinitionError(f"{where(definition)}: two consults are named {name!r}.")
        if name in offered:
            raise DefinitionError(
                f"{where(definition)}: consult {name}: one of its tools or handoffs already "
                "has that name."
            )
        wanted[name] = {"specialist": consult.specialist, **values}
    return wanted


def checked(
    definition: AssistantDefinition,
    rule: Any,
    tool_name: str,
    values: dict[str, Any],
    kind: RuleKind,
) -> str:
    """The rule's tool name (its default when none is given), after the admin's checks."""
    name = values["tool_name"] = rule.tool_name = tool_name or rule.default_tool_name()
    try:
        rule.full_clean(
            exclude=["source", kind.other], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        label = f"{kind.object} {name}"
        raise DefinitionError(f"{where(definition)}: {label}: {messages(exc)}") from None
    return name


def plan_rules(
    kind: RuleKind, slug: str, wanted: Rules, current: Mapping[str, Any], *, prune: bool, into: Plan
) -> None:
    """Create what is new, update what differs; what is no longer defined is deleted with
    `prune` and otherwise left alone (staff may have added it in the admin)."""
    for name in sorted(set(current) - set(wanted)):
        gone = Change("delete", kind.object, slug, name)
        (into if prune else into.left_alone).append(gone)
    for name, values in wanted.items():
        rule = current.get(name)
        if rule is None:
            into.append(Change("create", kind.object, slug, name, values=values))
            continue
        before = {key: getattr(rule, key) for key in values if key != kind.other}
        before[kind.other] = getattr(rule, kind.other).slug
        if fields := differences(before, values):
            into.append(Change("update", kind.object, slug, name, fields=fields))


def apply_rules(changes: Iterable[Change], assistants: Mapping[str, Assistant]) -> None:
    """Deletions first, so that a rule may be renamed to a name another one gave up."""
    changes = list(changes)
    for kind in KINDS:
        mine = [change for change in changes if change.object == kind.object]
        for change in (c for c in mine if c.kind == "delete"):
            kind.model.objects.filter(source__slug=change.slug, tool_name=change.tool_name).delete()
        for change in (c for c in mine if c.kind == "create"):
            values = dict(change.values)
            values[kind.other] = assistants[values[kind.other]]
            kind.model.objects.create(source=assistants[change.slug], **values)
        for change in (c for c in mine if c.kind == "update"):
            rule = kind.model.objects.get(source__slug=change.slug, tool_name=change.tool_name)
            for diff in change.fields:
                after = assistants[diff.after] if diff.name == kind.other else diff.after
                setattr(rule, diff.name, after)
            rule.save()
