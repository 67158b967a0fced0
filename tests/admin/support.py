"""Fixtures and helpers shared by the tests/admin/test_*.py files: the demo assistants, a
real run of the demo, admin URLs, the page as text, and change-form data as a browser
posts it.

The test files load the fixtures with `pytest_plugins = ["tests.admin.support"]`
and import the helpers."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import strip_tags

from chatapp import services
from chatapp.models import Assistant, ConsultRule, HandoffRule, Run
from chatapp.runs import say


@pytest.fixture
def demo(site_editor: None) -> dict[str, Assistant]:
    return {a.slug: a for a in Assistant.objects.all()}


@pytest.fixture
def run(demo: dict[str, Assistant], user: Any) -> Run:
    """A real run of the demo: Welcome's select_page, then the handoff to the Page editor."""
    thread = services.start_thread("welcome", user=user, title="Ada's chat")
    finished = say(thread, "I want to edit the about page")
    assert finished.status == "completed", finished.error
    return finished


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:chatapp_{name}", args=args)


def text(response: Any) -> str:
    """The page as a reader sees it: no tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(strip_tags(response.content.decode())).split())


def svg_of(response: Any) -> str:
    match = re.search(r'<svg [^>]*class="workflow".*?</svg>', response.content.decode(), re.S)
    assert match, "no SVG on the page"
    return match.group(0)


def assistant_data(assistant: Assistant, **changes: Any) -> dict[str, Any]:
    """The change form of `assistant` as a browser would post it, with `changes` applied.
    `rules=[...]` and `consults=[...]` replace the inline rows (dicts of field values, with
    "id" for a saved row)."""
    fields = {
        "name": assistant.name,
        "slug": assistant.slug,
        "description": assistant.description,
        "instructions": assistant.instructions,
        "tools": list(assistant.tools),
        "ask_before": list(assistant.ask_before),
        "provider": assistant.provider,
        "model": assistant.model,
        "temperature": "" if assistant.temperature is None else assistant.temperature,
        "max_steps": assistant.max_steps,
        "is_entry": assistant.is_entry,
    }
    saved = assistant.pk is not None
    rules = changes.pop(
        "rules",
        [rule_fields(r) for r in assistant.handoff_rules.order_by("order", "id")] if saved else [],
    )
    consults = changes.pop(
        "consults",
        [consult_fields(c) for c in assistant.consult_rules.order_by("order", "id")]
        if saved
        else [],
    )
    fields.update(changes)
    data: dict[str, Any] = {k: v for k, v in fields.items() if not isinstance(v, bool)}
    data.update({k: "on" for k, v in fields.items() if v is True})
    data.update(inline_data("handoff_rules", assistant, rules))
    data.update(inline_data("consult_rules", assistant, consults))
    return data


def inline_data(prefix: str, source: Assistant, rows: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": sum(1 for r in rows if r.get("id")),
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for i, values in enumerate(rows):
        for key, value in {"source": source.pk or "", **values}.items():
            if value is True:
                data[f"{prefix}-{i}-{key}"] = "on"
            elif value is not False:
                data[f"{prefix}-{i}-{key}"] = value
    return data


def consult_fields(consult: ConsultRule, **changes: Any) -> dict[str, Any]:
    values = {
        "id": consult.pk,
        "specialist": consult.specialist_id,
        "tool_name": consult.tool_name,
        "description": consult.description,
        "enabled": consult.enabled,
        "order": consult.order,
    }
    return {**values, **changes}


def rule_fields(rule: HandoffRule, **changes: Any) -> dict[str, Any]:
    import json

    values = {
        "id": rule.pk,
        "target": rule.target_id,
        "tool_name": rule.tool_name,
        "description": rule.description,
        "trigger": rule.trigger,
        "after_tool": rule.after_tool,
        "parameters": json.dumps(rule.parameters),
        "required_metadata": json.dumps(rule.required_metadata),
        "history": rule.history,
        "history_last_n": rule.history_last_n,
        "extra_instructions": rule.extra_instructions,
        "respond_immediately": rule.respond_immediately,
        "enabled": rule.enabled,
        "order": rule.order,
    }
    values.update(changes)
    return values


def new_rule(target: Assistant, **fields: Any) -> dict[str, Any]:
    return {
        "target": target.pk,
        "tool_name": "",
        "description": "",
        "trigger": "tool",
        "after_tool": "",
        "parameters": "{}",
        "required_metadata": "[]",
        "history": "full",
        "history_last_n": 6,
        "extra_instructions": "",
        "respond_immediately": True,
        "enabled": True,
        "order": 0,
        **fields,
    }


def inline_errors(response: Any) -> list[dict[str, Any]]:
    return response.context["inline_admin_formsets"][0].formset.errors
