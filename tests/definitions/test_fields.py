"""Each field of an assistant, a handoff rule and a consult rule is listed once, in the
definition dataclasses; everything else that names them must agree with that list."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import models

from assistants_registry.definitions import (
    ASSISTANT_SETTINGS,
    CONSULT_SETTINGS,
    HANDOFF_SETTINGS,
    AssistantDefinition,
    ConsultDefinition,
    HandoffDefinition,
)
from chatapp import versions
from chatapp.admin.forms import HandoffRuleForm
from chatapp.definitions import yaml_files
from chatapp.definitions.export import from_database
from chatapp.definitions.overrides import OVERRIDABLE
from chatapp.models import Assistant, ConsultRule, HandoffRule
from tests.factories import assistant

# Fields of the models that are not settings: keys, links to other rows, bookkeeping.
NOT_SETTINGS = {
    Assistant: {"id", "slug", "created_at", "updated_at"},
    HandoffRule: {"id", "source", "target", "order"},
    ConsultRule: {"id", "source", "specialist", "order"},
}
CASES = [
    (Assistant, AssistantDefinition, ASSISTANT_SETTINGS),
    (HandoffRule, HandoffDefinition, HANDOFF_SETTINGS),
    (ConsultRule, ConsultDefinition, CONSULT_SETTINGS),
]


def own_fields(model: type[models.Model]) -> dict[str, models.Field]:
    return {f.name: f for f in model._meta.get_fields() if f.concrete and not f.auto_created}


@pytest.mark.parametrize(("model", "definition", "settings_"), CASES)
def test_the_model_has_exactly_the_definitions_settings_with_the_same_defaults(
    model, definition, settings_
):
    fields = own_fields(model)
    assert set(fields) - NOT_SETTINGS[model] - {"id"} == set(settings_)
    for item in dataclasses.fields(definition):
        if item.name not in settings_:
            continue
        column = fields[item.name]
        if column.has_default():
            default = item.default
            if item.default_factory is not dataclasses.MISSING:
                default = item.default_factory()
            expected = list(default) if isinstance(default, tuple) else default
            assert column.get_default() == expected, item.name
        else:  # a model field without a default must be a required field of code too
            assert column.blank or item.default is dataclasses.MISSING, item.name


@pytest.mark.parametrize(
    ("schema", "definition"),
    [
        (yaml_files.AssistantSchema, AssistantDefinition),
        (yaml_files.HandoffSchema, HandoffDefinition),
        (yaml_files.ConsultSchema, ConsultDefinition),
    ],
)
def test_the_yaml_schema_is_the_definition(schema, definition):
    fields = [f.name for f in dataclasses.fields(definition) if f.name != "origin"]
    assert list(schema.model_fields) == fields
    for item in dataclasses.fields(definition):
        if item.name != "origin" and item.default is not dataclasses.MISSING:
            assert schema.model_fields[item.name].default == yaml_files.plain(item.default)


def test_the_version_snapshot_the_overrides_and_the_rule_form_use_the_same_lists():
    assert versions.ASSISTANT_FIELDS == ASSISTANT_SETTINGS == OVERRIDABLE
    assert (*HANDOFF_SETTINGS, "order") == versions.RULE_FIELDS
    assert (*CONSULT_SETTINGS, "order") == versions.CONSULT_FIELDS
    assert HandoffRuleForm.Meta.fields == ["target", *versions.RULE_FIELDS]


def non_default(item: dataclasses.Field) -> object:
    """A valid value unlike the field's default, for every type a setting has."""
    samples = {
        "description": "Something else.",
        "instructions": "Be brief.",
        "tools": ["select_page"],
        "ask_before": ["select_page"],
        "provider": "openai",
        "model": "gpt-test",
        "temperature": 0.25,
        "max_steps": 3,
        "is_entry": True,
        "name": "Renamed",
    }
    return samples[item.name]


@pytest.mark.django_db
def test_a_snapshot_and_an_export_carry_every_setting_of_an_assistant():
    values = {
        item.name: non_default(item)
        for item in dataclasses.fields(AssistantDefinition)
        if item.name in ASSISTANT_SETTINGS
    }
    bot = assistant("bot", **values)
    state = versions.snapshot(bot)
    assert state["assistant"] == values
    exported = next(d for d in from_database() if d.slug == "bot")
    assert yaml_files.plain({name: getattr(exported, name) for name in ASSISTANT_SETTINGS}) == (
        values
    )


def fieldset_fields(fieldsets: list) -> set[str]:
    names: set[str] = set()
    for _, options in fieldsets:
        for entry in options["fields"]:
            names |= set(entry) if isinstance(entry, tuple) else {entry}
    return names


def test_the_admin_shows_every_setting():
    from django.contrib import admin as django_admin

    from chatapp.admin.assistants import ConsultRuleInline, HandoffRuleInline

    assistant_admin = django_admin.site._registry[Assistant]
    shown = fieldset_fields(assistant_admin.fieldsets) - {"slug", "created_at", "updated_at"}
    assert shown == set(ASSISTANT_SETTINGS)
    assert fieldset_fields(HandoffRuleInline.fieldsets) - {"target"} == set(versions.RULE_FIELDS)
    assert ConsultRuleInline.fields == ["specialist", *versions.CONSULT_FIELDS]
