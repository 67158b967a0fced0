"""Handoff rules seen from the model: a rule is a tool, its parameters a small JSON schema.

A handoff *is* a tool call. Its arguments are validated with a pydantic model built from the
rule's schema, then merged into the thread's metadata together with the switch of assistant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from assistants_registry.tools import ToolError, describe
from chatapp.models import HandoffRule
from chatapp.providers.base import ToolDefinition

JSON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def parameters_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model for a rule's parameters; ValueError names what is not supported.

    Supported: {"type": "object", "properties": {name: {"type": string|integer|number|boolean,
    "enum": [...], "description": "..."}}, "required": [...]} — enough for facts like page_id.
    """
    if not schema:
        return create_model("handoff_arguments", __config__=ConfigDict(extra="forbid"))
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ValueError('The parameters must be a JSON schema of "type": "object".')
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise ValueError('"properties" must be an object and "required" a list.')
    if missing := set(required) - set(properties):
        raise ValueError(f"Required but not described: {', '.join(sorted(missing))}.")
    fields: dict[str, Any] = {}
    for name, prop in properties.items():
        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a valid parameter name.")
        if not isinstance(prop, dict):
            raise ValueError(f"The schema of {name!r} must be an object.")
        if "enum" in prop:
            if not prop["enum"] or not isinstance(prop["enum"], list):
                raise ValueError(f"The enum of {name!r} must be a non-empty list.")
            annotation: Any = Literal[tuple(prop["enum"])]
        elif prop.get("type") in JSON_TYPES:
            annotation = JSON_TYPES[prop["type"]]
        else:
            supported = ", ".join(JSON_TYPES)
            raise ValueError(f"{name!r}: type must be one of {supported}, or an enum.")
        default = ... if name in required else None
        if default is None:
            annotation = annotation | None
        fields[name] = (annotation, Field(default, description=prop.get("description")))
    return create_model("handoff_arguments", __config__=ConfigDict(extra="forbid"), **fields)


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


def describe_metadata(metadata: dict[str, Any]) -> str:
    """`page_id=about, mode=edit`, for handoff notes and banners."""
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in metadata.items()
    )
