"""Where definitions come from: YAML files (their errors, cross-file handoffs, the schema)
and discovery of apps' assistants.py / assistants.yaml and CHATAPP_ASSISTANT_FILES."""

from __future__ import annotations

import dataclasses

import pytest
from django.apps import apps
from django.core.management.base import CommandError

from assistants_registry.definitions import (
    AssistantDefinition,
    ConsultDefinition,
    HandoffDefinition,
)
from chatapp.definitions import yaml_files
from chatapp.definitions.discovery import discover
from chatapp.models import HandoffRule
from tests.definitions.support import command, rows, write
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)


# --- YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "assistants:\n  - slug: a\n    name: A\n    colour: blue\n",
            "{path}: assistant 'a': unknown key 'colour' (known: slug, name, ",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    handoffs:\n      - target: a\n"
            "        when: now\n",
            "{path}: assistant 'a': unknown key 'when' in handoffs[0] (known: target, trigger, ",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n  - slug: a\n    name: B\n",
            "assistant 'a' is defined 2 times in {path}",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    handoffs:\n      - target: nobody\n",
            "{path}: assistant 'a': hands off to 'nobody', which is neither defined nor in the "
            "database.",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    consults:\n      - specialist: b\n"
            "        ask: twice\n",
            "{path}: assistant 'a': unknown key 'ask' in consults[0] (known: specialist, "
            "tool_name, description, enabled)",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    consults:\n      - specialist: nobody\n",
            "{path}: assistant 'a': consults 'nobody', which is neither defined nor in the "
            "database.",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    consults:\n      - specialist: a\n",
            "{path}: assistant 'a': consults itself.",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    consults:\n      - tool_name: ask\n"
            "        enabled: no\n  - slug: b\n    name: B\n    consults: [b]\n",
            "{path}: assistant 'a': consults[0].specialist: required\n"
            "{path}: assistant 'b': consults[0]: Input should be a valid dictionary or instance "
            "of ConsultSchema",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    is_entry: maybe\n",
            "{path}: assistant 'a': is_entry: Input should be a valid boolean",
        ),
        (
            "assistants:\n  - slug: a\n    name: A\n    handoffs:\n      - trigger: later\n",
            "{path}: assistant 'a': handoffs[0].target: required\n"
            "{path}: assistant 'a': handoffs[0].trigger: Input should be 'tool' or 'after_tool'",
        ),
        ("assistants:\n  - name: A\n", "{path}: assistant #1: slug: required"),
        (
            "assistants:\n  - slug: a\n    name: A\n    name: B\n",
            "{path}: not valid YAML at line 4, column 5: the key 'name' is given twice",
        ),
        ("- slug: a\n", "{path}: expected a mapping with an `assistants:` list."),
        ("assistants: []\nversion: 2\n", "{path}: unknown top-level key(s): version."),
        (
            "assistants:\n  - slug: not a slug\n    name: A\n",
            "{path}: assistant 'not a slug': slug: Enter a valid “slug”",
        ),
    ],
)
def test_yaml_errors_name_the_file_and_the_assistant(tmp_path, text, message):
    path = write(tmp_path / "assistants.yaml", text)
    with pytest.raises(CommandError) as error:
        command("sync_assistants", file=[path])
    assert str(error.value).startswith(message.format(path=path))
    assert rows() == ([], [], [], [])


def test_a_handoff_may_target_an_assistant_of_another_file_or_the_database(tmp_path):
    one = write(tmp_path / "one.yaml", "assistants:\n  - slug: a\n    name: A\n")
    two = write(
        tmp_path / "two.yaml",
        "assistants:\n  - slug: b\n    name: B\n    handoffs:\n      - target: a\n",
    )
    command("sync_assistants", file=[one, two])
    assert HandoffRule.objects.get().target.slug == "a"
    assistant("c")
    three = write(
        tmp_path / "three.yaml",
        "assistants:\n  - slug: d\n    name: D\n    handoffs:\n      - target: c\n",
    )
    command("sync_assistants", file=[three])
    assert HandoffRule.objects.get(source__slug="d").target.slug == "c"


def test_the_yaml_schema_mirrors_the_dataclasses():
    for schema, cls in (
        (yaml_files.AssistantSchema, AssistantDefinition),
        (yaml_files.HandoffSchema, HandoffDefinition),
        (yaml_files.ConsultSchema, ConsultDefinition),
    ):
        fields = {f.name for f in dataclasses.fields(cls)} - {"origin"}
        assert set(schema.model_fields) == fields
    assert yaml_files.to_data(AssistantDefinition(slug="a", name="A")) == (
        yaml_files.AssistantSchema(slug="a", name="A").model_dump()
    )


# --- discovery -----------------------------------------------------------------------------


def test_discover_finds_app_modules_app_yaml_and_setting_files(settings, tmp_path, monkeypatch):
    found = {d.slug: d.origin for d in discover()}
    assert found == {
        "welcome": "assistants_registry.site_editor.assistants",
        "page-editor": "assistants_registry.site_editor.assistants",
        "writer": "assistants_registry.writers_room.assistants",
        "critic": "assistants_registry.writers_room.assistants",
        "data-analyst": "assistants_registry.data_analyst.assistants",
    }
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    app_yaml = write(app_dir / "assistants.yaml", "assistants:\n  - slug: b\n    name: B\n")
    monkeypatch.setattr(apps.get_app_config("chatapp"), "path", str(app_dir))
    extra = write(tmp_path / "extra.yaml", "assistants:\n  - slug: c\n    name: C\n")
    settings.CHATAPP_ASSISTANT_FILES = [extra]

    found = {d.slug: d.origin for d in discover()}

    assert (found["b"], found["c"]) == (app_yaml, extra)
    out = command("sync_assistants")
    assert "+ assistant b" in out and "+ assistant c" in out


def test_a_slug_defined_in_two_sources_is_an_error(settings, tmp_path):
    settings.CHATAPP_ASSISTANT_FILES = [
        write(tmp_path / "x.yaml", "assistants:\n  - slug: welcome\n    name: W\n")
    ]
    with pytest.raises(CommandError) as error:
        command("sync_assistants")
    assert str(error.value) == (
        "assistant 'welcome' is defined more than once: in "
        f"assistants_registry.site_editor.assistants and {tmp_path / 'x.yaml'}"
    )
