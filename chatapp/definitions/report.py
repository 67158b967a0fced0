"""A sync plan in plain words, one line per change:

+ assistant welcome
+ rule welcome.transfer_to_page_editor → page-editor
+ consult writer.ask_critic → critic
~ assistant page-editor: model "" → "gpt-5-mini"
- rule page-editor.edit_another_page
  rule page-editor.old_tool left alone: no longer defined (--prune deletes it)
! assistants.yaml: assistant 'welcome': tool 'search' is not in this installation's ...
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatapp.definitions.changes import Change, Plan

SIGNS = {"create": "+", "update": "~", "delete": "-"}
NOUNS = {"assistant": "assistant", "rule": "rule", "consult": "consult rule"}
LONGEST_VALUE = 60


def report(plan: Plan) -> list[str]:
    lines = [line for change in plan for line in describe(change)]
    lines += [
        f"  {change.label} left alone: no longer defined (--prune deletes it)"
        for change in plan.left_alone
    ]
    lines += [f"! {warning}" for warning in plan.warnings]
    return lines


def describe(change: Change) -> list[str]:
    subject = change.label
    if change.kind == "update":
        return [
            f"~ {subject}: {diff.name} {show(diff.before)} → {show(diff.after)}"
            for diff in change.fields
        ]
    if change.kind == "create" and change.object != "assistant":
        other = change.values["target" if change.object == "rule" else "specialist"]
        return [f"+ {subject} → {other}"]
    return [f"{SIGNS[change.kind]} {subject}"]


def show(value: Any) -> str:
    """A value as JSON, cut short: instructions can be pages long."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= LONGEST_VALUE else text[: LONGEST_VALUE - 1] + "…"


def summary(plan: Plan) -> str:
    """`2 assistants created, 1 rule deleted, 1 rule left alone.`, or that nothing changes."""
    counts = Counter((change.object, change.kind) for change in plan)
    parts = [
        f"{n} {noun}{'s' * (n != 1)} {kind}d"
        for obj, noun in NOUNS.items()
        for kind in ("create", "update", "delete")
        if (n := counts[obj, kind])
    ]
    alone = Counter(change.object for change in plan.left_alone)
    parts += [
        f"{n} {noun}{'s' * (n != 1)} left alone" for obj, noun in NOUNS.items() if (n := alone[obj])
    ]
    if n := len(plan.warnings):
        parts.append(f"{n} warning{'s' * (n != 1)}")
    if not plan:
        parts.insert(0, "No changes: the database matches the definitions")
    return ", ".join(parts) + "."
