"""A handoff rule's parameters: a small JSON schema that staff write, as a pydantic model.

The model validates what a model passes to the handoff tool, and gives the JSON schema the
model is shown. It lives beside `@tool` (which does the same for Python functions) so that
`chatapp.models` can validate a rule when staff save it without importing the engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

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
