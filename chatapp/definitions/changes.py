"""What a sync plan is made of: changes to assistants, handoff rules ("rule") and consult
rules ("consult"), and the few helpers that planning them shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ValidationError

from assistants_registry.definitions import AssistantDefinition

Kind = Literal["create", "update", "delete"]
Object = Literal["assistant", "rule", "consult"]


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    kind: Kind
    object: Object
    slug: str  # the assistant; for a rule, its source
    tool_name: str = ""  # rules only
    fields: tuple[FieldChange, ...] = ()  # updates: what differs, before → after
    # Creates: every value to write (a rule's "target" / a consult's "specialist" is a slug).
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
        if self.object == "assistant":
            return f"assistant {self.slug}"
        return f"{self.object} {self.slug}.{self.tool_name}"


class Plan(list[Change]):
    """The changes to make, plus what sync noticed and will not do: rules no longer defined
    (deleted only with prune) and warnings (tools this installation does not have)."""

    def __init__(self, changes: Iterable[Change] = ()) -> None:
        super().__init__(changes)
        self.left_alone: list[Change] = []
        self.warnings: list[str] = []


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(name, before[name], value)
        for name, value in after.items()
        if before[name] != value
    )


def where(definition: AssistantDefinition) -> str:
    origin = f"{definition.origin}: " if definition.origin else ""
    return f"{origin}assistant {definition.slug!r}"


def messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in exc.message_dict.items())
    return " ".join(exc.messages)
