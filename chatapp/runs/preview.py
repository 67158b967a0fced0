"""What a model receives from an assistant, rendered for a sample thread.

Used twice: to validate templates when staff save (a template that does not render is a form
error, not a failed run later) and for the read-only preview page. The sample context has
the shape of `context.template_context`, built from plain values. A thread's
metadata accumulates as it moves between assistants, so the sample thread knows every fact a
handoff rule can write or require (its parameters and required metadata), each as "sample":
`{{ metadata.page_id }}` renders as `sample` where a real thread names a page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from assistants_registry.registry import Registry
from chatapp.models import Assistant, HandoffRule
from chatapp.runs.context import InstructionsError, assistant_tools, render_template
from chatapp.runs.turns import newest_version, rules_of

SAMPLE = "sample"


def rule_metadata_keys(parameters: Any, required_metadata: Any) -> set[str]:
    """The metadata keys a rule writes or requires; tolerant of not-yet-valid JSON."""
    keys: set[str] = set()
    if isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict):
        keys.update(str(name) for name in parameters["properties"])
    if isinstance(required_metadata, list):
        keys.update(str(name) for name in required_metadata)
    return keys


def sample_metadata(extra_keys: set[str] | None = None) -> dict[str, str]:
    """Every metadata key the rules know of (plus `extra_keys`, from rules not saved yet)."""
    keys = set(extra_keys or ())
    for parameters, required in HandoffRule.objects.values_list("parameters", "required_metadata"):
        keys |= rule_metadata_keys(parameters, required)
    return {key: SAMPLE for key in sorted(keys)}


def sample_context(
    *, slug: str, name: str, description: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "thread": {"id": SAMPLE, "title": "Sample"},
        "metadata": metadata,
        "user": {"username": "sample-user", "name": "Sample user"},
        "assistant": {"slug": slug, "name": name, "description": description},
    }


def context_for(assistant: Assistant, extra_keys: set[str] | None = None) -> dict[str, Any]:
    return sample_context(
        slug=assistant.slug,
        name=assistant.name,
        description=assistant.description,
        metadata=sample_metadata(extra_keys),
    )


def template_error(source: str, context: dict[str, Any], what: str) -> str | None:
    """None when `source` renders with `context`; otherwise why not, for a form error."""
    try:
        render_template(source, context, what)
    except InstructionsError as exc:
        return str(exc)
    return None


@dataclass
class ToolPreview:
    name: str
    description: str
    schema: str  # pretty-printed JSON
    kind: str  # "tool", "handoff" or "consult"
    permission: str | None = None  # offered only to users who have it


@dataclass
class Arrival:
    """A rule into this assistant and the extra instructions it appends on arrival."""

    rule: HandoffRule
    text: str = ""
    error: str = ""


@dataclass
class Preview:
    metadata: dict[str, Any]
    instructions: str = ""
    error: str = ""
    tools: list[ToolPreview] = field(default_factory=list)
    after_tool: list[HandoffRule] = field(default_factory=list)
    not_installed: list[str] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)


def build_preview(assistant: Assistant, registry: Registry) -> Preview:
    context = context_for(assistant)
    preview = Preview(metadata=context["metadata"])
    try:
        preview.instructions = render_template(
            assistant.instructions, context, f"instructions of {assistant.name}"
        )
    except InstructionsError as exc:
        preview.error = str(exc)
    # what the engine loads for a turn
    rules, consults = rules_of(assistant, newest_version().first())
    try:
        tools = assistant_tools(assistant, rules, registry, consults)
    except ValueError as exc:  # a rule's parameters written as code, never validated
        preview.error = preview.error or f"A handoff rule's parameters are invalid: {exc}"
        return preview
    for definition in tools.definitions():
        preview.tools.append(
            ToolPreview(
                definition.name,
                definition.description,
                json.dumps(definition.parameters, indent=2, ensure_ascii=False),
                tools.kind(definition.name),
                getattr(tools.ordinary.get(definition.name), "permission", None),
            )
        )
    preview.after_tool = tools.after_tool
    preview.not_installed = [name for name in assistant.tools if name not in registry]
    for rule in assistant.incoming_rules.select_related("source").order_by("source__name"):
        arrival = Arrival(rule)
        if rule.extra_instructions:
            try:
                arrival.text = render_template(
                    rule.extra_instructions, context, f"extra instructions of {rule}"
                )
            except InstructionsError as exc:
                arrival.error = str(exc)
        preview.arrivals.append(arrival)
    return preview
