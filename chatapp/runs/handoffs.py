"""Handoff rules seen from the model: a rule is a tool, its parameters a small JSON schema.

A handoff *is* a tool call. Its arguments are validated with a pydantic model built from the
rule's schema, then merged into the thread's metadata together with the switch of assistant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from assistants_registry.parameters import parameters_model
from assistants_registry.tools import ToolError, describe
from chatapp.models import HandoffRule
from chatapp.providers.base import ToolDefinition


@dataclass(frozen=True)
class HandoffTool:
    rule: HandoffRule
    definition: ToolDefinition

    @property
    def name(self) -> str:
        return self.rule.tool_name


def handoff_tool(rule: HandoffRule) -> HandoffTool:
    target = rule.target
    description = rule.description or (
        f"Hand the conversation to {target.name}. {target.description}".strip()
    )
    schema = parameters_model(rule.parameters).model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return HandoffTool(rule, ToolDefinition(rule.tool_name, description, schema))


def handoff_updates(rule: HandoffRule, arguments: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata a handoff writes, or ToolError: invalid arguments or a missing fact."""
    try:
        model = parameters_model(rule.parameters).model_validate_json(arguments or "{}")
    except ValidationError as exc:
        raise ToolError(f"Invalid arguments for {rule.tool_name}: {describe(exc)}") from None
    updates = model.model_dump(exclude_none=True)
    check_required(rule, {**metadata, **updates})
    return updates


def check_required(rule: HandoffRule, metadata: dict[str, Any]) -> None:
    missing = [key for key in rule.required_metadata if metadata.get(key) in (None, "")]
    if missing:
        raise ToolError(
            f"Cannot hand off to {rule.target.name} yet: {', '.join(missing)} must be known first."
        )
