"""Assistant versions: a snapshot whenever an assistant or its handoff rules change.

Changes are noticed by signals and recorded once per transaction, when it commits, so an
admin save of an assistant with its inline rules makes one version, not one per row.
Recording is idempotent: a snapshot equal to the latest version records nothing.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from django.db import transaction
from django.db.models import Max

from assistants_registry.definitions import ASSISTANT_SETTINGS, CONSULT_SETTINGS, HANDOFF_SETTINGS
from chatapp.compiled import Compiled
from chatapp.models import Assistant, AssistantVersion, ConsultRule, HandoffRule

# What a version records: the fields of assistants and rules as code defines them, and the
# rules' order (which code gives by position).
ASSISTANT_FIELDS = ASSISTANT_SETTINGS
RULE_FIELDS = (*HANDOFF_SETTINGS, "order")
CONSULT_FIELDS = (*CONSULT_SETTINGS, "order")


class RestoreError(Exception):
    """A version cannot be restored (e.g. a rule's target assistant no longer exists)."""


def snapshot(assistant: Assistant) -> dict[str, Any]:
    rules = assistant.handoff_rules.select_related("target").order_by("order", "tool_name")
    return {
        "assistant": {name: getattr(assistant, name) for name in ASSISTANT_FIELDS},
        "rules": [
            {"target": rule.target.slug, **{name: getattr(rule, name) for name in RULE_FIELDS}}
            for rule in rules
        ],
        "consults": [
            {"specialist": c.specialist.slug, **{name: getattr(c, name) for name in CONSULT_FIELDS}}
            for c in assistant.consult_rules.select_related("specialist").order_by(
                "order", "tool_name"
            )
        ],
    }


def latest(assistant_id: Any) -> AssistantVersion | None:
    return AssistantVersion.objects.filter(assistant_id=assistant_id).order_by("-number").first()


# Read twice by every answer (its run, then its message's step): compiled once.
_latest_keys = Compiled(
    lambda assistant_id: (
        AssistantVersion.objects.filter(assistant_id=assistant_id)
        .order_by("-number")
        .values_list("pk", "number")[:1]
    ),
    assistant_id=AssistantVersion._meta.get_field("assistant"),
)


def latest_key(assistant_id: Any) -> tuple[int, int] | None:
    """The latest version's (pk, number), without its snapshot: what a run records of it."""
    found = _latest_keys.list(assistant_id=assistant_id)
    return found[0] if found else None


def record(assistant_id: Any) -> AssistantVersion | None:
    """A new version if the assistant differs from its latest one; None otherwise."""
    with transaction.atomic():
        assistant = Assistant.objects.select_for_update().filter(pk=assistant_id).first()
        if assistant is None:  # deleted in the same transaction
            return None
        state = snapshot(assistant)
        previous = latest(assistant_id)
        if previous is not None and previous.snapshot == state:
            return None
        number = (
            AssistantVersion.objects.filter(assistant=assistant).aggregate(n=Max("number"))["n"]
            or 0
        ) + 1
        return AssistantVersion.objects.create(assistant=assistant, number=number, snapshot=state)


def record_on_commit(assistant_id: Any) -> None:
    transaction.on_commit(lambda: record(assistant_id))


def diff(old: AssistantVersion | None, new: AssistantVersion) -> list[str]:
    """A unified diff of two versions' snapshots, line by line, for the admin."""
    before = pretty(old.snapshot) if old else []
    label = f"v{old.number}" if old else "nothing"
    return list(
        difflib.unified_diff(before, pretty(new.snapshot), label, f"v{new.number}", lineterm="")
    )


def pretty(state: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, value in state["assistant"].items():
        if name == "instructions":
            lines.append("instructions:")
            lines.extend(f"    {line}" for line in str(value).splitlines())
        else:
            lines.append(f"{name}: {json.dumps(value, ensure_ascii=False)}")
    for rule in state.get("consults", []):
        lines.append(f"consult {rule['tool_name']} → {rule['specialist']}:")
        lines.extend(
            f"    {key}: {json.dumps(value)}" for key, value in rule.items() if key != "tool_name"
        )
    for rule in state["rules"]:
        lines.append(f"rule {rule['tool_name']} → {rule['target']}:")
        lines.extend(
            f"    {key}: {json.dumps(value, ensure_ascii=False)}"
            for key, value in rule.items()
            if key not in ("tool_name", "target")
        )
    return lines


@transaction.atomic
def restore(version: AssistantVersion) -> AssistantVersion | None:
    """Make the assistant what it was at `version`; the result is recorded as a new version."""
    assistant = version.assistant
    state = version.snapshot
    consults = state.get("consults", [])
    slugs = {rule["target"] for rule in state["rules"]} | {c["specialist"] for c in consults}
    targets = {a.slug: a for a in Assistant.objects.filter(slug__in=slugs)}
    if missing := slugs - set(targets):
        raise RestoreError(
            f"v{version.number} names assistants that no longer exist: "
            f"{', '.join(sorted(missing))}."
        )
    for name, value in state["assistant"].items():
        setattr(assistant, name, value)
    assistant.save()
    assistant.handoff_rules.all().delete()
    for rule in state["rules"]:
        values = {k: v for k, v in rule.items() if k != "target"}
        HandoffRule.objects.create(source=assistant, target=targets[rule["target"]], **values)
    assistant.consult_rules.all().delete()
    for rule in consults:
        values = {k: v for k, v in rule.items() if k != "specialist"}
        ConsultRule.objects.create(
            source=assistant, specialist=targets[rule["specialist"]], **values
        )
    return record(assistant.pk)


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    def assistant_changed(sender: Any, instance: Assistant, **kwargs: Any) -> None:
        record_on_commit(instance.pk)

    def rule_changed(sender: Any, instance: HandoffRule | ConsultRule, **kwargs: Any) -> None:
        record_on_commit(instance.source_id)

    # Local functions: held strongly, or they are collected once this returns (with DEBUG on,
    # a check of the signature happened to keep them alive, and hid it).
    post_save.connect(
        assistant_changed, sender=Assistant, weak=False, dispatch_uid="version-assistant"
    )
    post_save.connect(
        rule_changed, sender=HandoffRule, dispatch_uid="version-rule-save", weak=False
    )
    post_delete.connect(
        rule_changed, sender=HandoffRule, dispatch_uid="version-rule-delete", weak=False
    )
    post_save.connect(
        rule_changed, sender=ConsultRule, dispatch_uid="version-consult-save", weak=False
    )
    post_delete.connect(
        rule_changed, sender=ConsultRule, dispatch_uid="version-consult-delete", weak=False
    )
