"""Assistants as code: discovery, YAML, overrides, sync_assistants and export_assistants."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from assistants_registry.definitions import (
    AssistantDefinition,
    ConsultDefinition,
    DefinitionError,
    HandoffDefinition,
)
from assistants_registry.site_editor.assistants import ASSISTANTS, PAGE_EDITOR, WELCOME
from assistants_registry.writers_room.assistants import CRITIC, WRITER
from chatapp import definitions_io
from chatapp.discovery import discover
from chatapp.models import (
    Assistant,
    AssistantVersion,
    ConsultRule,
    HandoffRule,
    Run,
    Thread,
)
from chatapp.sync import plan, sync
from chatapp.sync_report import report
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)

SUPPORT_YAML = """\
assistants:
  - slug: support
    name: Support
    instructions: |
      You answer questions about {{ metadata.page_id }}.

        Indented example line.
      Be brief.
    temperature: 0.2
    max_steps: 3
    tools:
      - show_page
    handoffs:
      - target: page-editor
        tool_name: open_editor
        history: last_n
        history_last_n: 2
        respond_immediately: false
        parameters:
          type: object
          properties:
            page_id: {type: string, description: The page to edit.}
            mode: {enum: [text, layout]}
          required: [page_id]
    consults:
      - specialist: critic
        tool_name: second_opinion
        description: A second opinion on an answer.
        enabled: false
      - specialist: welcome
"""


def command(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def rows() -> tuple[list[dict], ...]:
    """Everything sync may write, to prove that something wrote nothing."""
    return tuple(
        list(model.objects.order_by("pk").values())
        for model in (Assistant, HandoffRule, ConsultRule, AssistantVersion)
    )


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- sync_assistants -----------------------------------------------------------------------


def test_sync_creates_the_discovered_assistants_and_rules():
    out = command("sync_assistants")
    assert set(Assistant.objects.values_list("slug", flat=True)) == {
        "welcome",
        "page-editor",
        "writer",
        "critic",
    }
    welcome = Assistant.objects.get(slug="welcome")
    assert welcome.is_entry and welcome.tools == ["select_page", "list_pages"]
    handoff = HandoffRule.objects.get(source=welcome)
    assert (handoff.target.slug, handoff.tool_name) == ("page-editor", "transfer_to_page_editor")
    assert (handoff.trigger, handoff.after_tool, handoff.required_metadata) == (
        "after_tool",
        "select_page",
        ["page_id"],
    )
    assert HandoffRule.objects.get(source__slug="page-editor").tool_name == "edit_another_page"
    assert out.splitlines() == [
        "+ assistant welcome",
        "+ rule welcome.transfer_to_page_editor → page-editor",
        "+ assistant page-editor",
        "+ rule page-editor.edit_another_page → welcome",
        "+ assistant writer",
        "+ consult writer.ask_critic → critic",
        "+ assistant critic",
        "4 assistants created, 2 rules created, 1 consult rule created.",
    ]
    consult = ConsultRule.objects.get()
    assert (consult.source.slug, consult.specialist.slug, consult.tool_name) == (
        "writer",
        "critic",
        "ask_critic",
    )
    assert (consult.description, consult.enabled, consult.order) == ("", True, 0)
    assert AssistantVersion.objects.count() == 4  # one version per assistant, not per row


def test_a_second_sync_changes_nothing_and_writes_nothing():
    command("sync_assistants")
    before = rows()
    out = command("sync_assistants")
    assert out == "No changes: the database matches the definitions.\n"
    assert rows() == before  # same updated_at, same versions


def test_a_changed_definition_updates_only_what_changed(tmp_path):
    sync(ASSISTANTS)
    welcome_before = Assistant.objects.get(slug="welcome").updated_at
    versions = AssistantVersion.objects.count()
    editor = dataclasses.replace(
        PAGE_EDITOR,
        model="gpt-5-mini",
        max_steps=5,
        handoffs=(dataclasses.replace(PAGE_EDITOR.handoffs[0], description="Back to Welcome."),),
    )
    path = write(tmp_path / "a.yaml", definitions_io.dump_yaml([WELCOME, editor]))

    out = command("sync_assistants", file=[path])

    assert out.splitlines() == [
        '~ assistant page-editor: model "" → "gpt-5-mini"',
        "~ assistant page-editor: max_steps 8 → 5",
        '~ rule page-editor.edit_another_page: description "Go back to Welcome to choose another '
        'page to edit." → "Back to Welcome."',
        "1 assistant updated, 1 rule updated.",
    ]
    page_editor = Assistant.objects.get(slug="page-editor")
    assert (page_editor.model, page_editor.max_steps) == ("gpt-5-mini", 5)
    assert Assistant.objects.get(slug="welcome").updated_at == welcome_before
    assert AssistantVersion.objects.count() == versions + 1


def test_long_values_are_cut_short_in_the_diff():
    sync(ASSISTANTS)
    changes = plan([dataclasses.replace(WELCOME, instructions="New.\n" * 40), PAGE_EDITOR])
    [line] = report(changes)
    assert line.startswith('~ assistant welcome: instructions "You are the welcome desk')
    assert line.endswith("…") and len(line) < 200


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    out = command("sync_assistants", dry_run=True)
    assert "+ assistant welcome" in out and out.endswith("Dry run: nothing was written.\n")
    assert rows() == ([], [], [], [])

    sync(ASSISTANTS)
    before = rows()
    path = write(
        tmp_path / "a.yaml",
        definitions_io.dump_yaml([dataclasses.replace(WELCOME, model="gpt-x"), PAGE_EDITOR]),
    )
    out = command("sync_assistants", "--dry-run", "--file", path)
    assert '~ assistant welcome: model "" → "gpt-x"' in out.splitlines()
    assert rows() == before


def test_a_renamed_rule_is_deleted_and_created():
    sync(ASSISTANTS)
    renamed = dataclasses.replace(
        PAGE_EDITOR,
        handoffs=(dataclasses.replace(PAGE_EDITOR.handoffs[0], tool_name="choose_page"),),
    )
    lines = report(sync([WELCOME, renamed], prune=True))
    assert lines == [
        "- rule page-editor.edit_another_page",
        "+ rule page-editor.choose_page → welcome",
    ]
    assert list(
        HandoffRule.objects.filter(source__slug="page-editor").values_list("tool_name", flat=True)
    ) == ["choose_page"]


def test_prune_deletes_an_assistant_that_is_no_longer_defined():
    sync(discover())
    old = assistant("old-bot")
    rule(old, Assistant.objects.get(slug="welcome"))

    out = command("sync_assistants", prune=True)

    assert out.splitlines() == [
        "- rule old-bot.transfer_to_welcome",
        "- assistant old-bot",
        "1 assistant deleted, 1 rule deleted.",
    ]
    assert not Assistant.objects.filter(slug="old-bot").exists()
    assert Assistant.objects.count() == 4 and HandoffRule.objects.count() == 2


def test_without_prune_other_assistants_are_left_alone():
    sync(discover())
    assistant("made-in-the-admin")
    assert command("sync_assistants").startswith("No changes")
    assert Assistant.objects.filter(slug="made-in-the-admin").exists()


def test_prune_deletes_assistants_that_consult_each_other():
    sync(discover())
    first, second = assistant("first"), assistant("second")
    ConsultRule.objects.create(source=first, specialist=second)
    ConsultRule.objects.create(source=second, specialist=first)
    out = command("sync_assistants", prune=True)
    assert out.splitlines() == [
        "- consult first.ask_second",
        "- assistant first",
        "- consult second.ask_first",
        "- assistant second",
        "2 assistants deleted, 2 consult rules deleted.",
    ]
    assert Assistant.objects.count() == 4
    assert list(ConsultRule.objects.values_list("tool_name", flat=True)) == ["ask_critic"]


@pytest.mark.parametrize("use", ["thread", "run", "kept rule", "consult"])
def test_prune_refuses_an_assistant_in_use_and_writes_nothing(use, user, tmp_path):
    sync(ASSISTANTS)
    old = assistant("old-bot")
    welcome = WELCOME
    if use == "thread":
        Thread.start(old, user=user)
    elif use == "run":
        Run.objects.create(thread=Thread.start("welcome", user=user), assistant=old)
    elif use == "consult":
        welcome = dataclasses.replace(WELCOME, consults=(ConsultDefinition("old-bot"),))
    else:
        welcome = dataclasses.replace(
            WELCOME, handoffs=(*WELCOME.handoffs, HandoffDefinition(target="old-bot"))
        )
    # Other changes are planned too: none of them may be written.
    editor = dataclasses.replace(PAGE_EDITOR, model="gpt-x")
    path = write(tmp_path / "a.yaml", definitions_io.dump_yaml([welcome, editor]))
    before = rows()

    with pytest.raises(CommandError) as refused:
        command("sync_assistants", "--prune", "--file", path)

    message = str(refused.value)
    assert message.startswith("Cannot prune, nothing was written; still in use: old-bot (")
    expected = {
        "thread": "1 thread on it",
        "run": "1 run that used it",
        "consult": "welcome consults it",
    }
    assert expected.get(use, "a handoff of welcome targets it") in message
    assert rows() == before


def test_rules_no_longer_defined_are_left_alone_without_prune_and_deleted_with_it():
    sync(discover())
    editor = Assistant.objects.get(slug="page-editor")
    rule(editor, editor, tool_name="start_over")  # added by staff in the admin

    out = command("sync_assistants")
    assert out.splitlines() == [
        "  rule page-editor.start_over left alone: no longer defined (--prune deletes it)",
        "No changes: the database matches the definitions, 1 rule left alone.",
    ]
    assert HandoffRule.objects.filter(tool_name="start_over").exists()

    out = command("sync_assistants", prune=True)
    assert out.splitlines() == ["- rule page-editor.start_over", "1 rule deleted."]
    assert not HandoffRule.objects.filter(tool_name="start_over").exists()


# --- consult rules -------------------------------------------------------------------------

ASK_CRITIC = ConsultDefinition("critic")


def writer_with(*consults: ConsultDefinition) -> AssistantDefinition:
    return dataclasses.replace(WRITER, consults=consults)


def consult_rows() -> list[tuple]:
    return list(
        ConsultRule.objects.order_by("source__slug", "order").values_list(
            "source__slug", "specialist__slug", "tool_name", "description", "enabled", "order"
        )
    )


def test_consult_rules_are_created_and_updated():
    to_the_desk = ConsultDefinition("welcome", tool_name="ask_the_desk", enabled=False)
    lines = report(sync([*ASSISTANTS, writer_with(to_the_desk), CRITIC]))
    assert "+ consult writer.ask_the_desk → welcome" in lines
    assert consult_rows() == [("writer", "welcome", "ask_the_desk", "", False, 0)]

    changed = ConsultDefinition("critic", tool_name="ask_the_desk", description="Ask first.")
    lines = report(sync([*ASSISTANTS, writer_with(changed, ASK_CRITIC), CRITIC]))

    assert lines == [
        '~ consult writer.ask_the_desk: specialist "welcome" → "critic"',
        '~ consult writer.ask_the_desk: description "" → "Ask first."',
        "~ consult writer.ask_the_desk: enabled false → true",
        "+ consult writer.ask_critic → critic",
    ]
    assert consult_rows() == [
        ("writer", "critic", "ask_the_desk", "Ask first.", True, 0),
        ("writer", "critic", "ask_critic", "", True, 1),
    ]
    writer = Assistant.objects.get(slug="writer")
    assert len(writer.versions.latest("number").snapshot["consults"]) == 2
    assert plan([*ASSISTANTS, writer_with(changed, ASK_CRITIC), CRITIC]) == []


def test_consult_rules_no_longer_defined_are_left_alone_without_prune_and_deleted_with_it(
    tmp_path,
):
    sync(discover())
    path = write(tmp_path / "a.yaml", definitions_io.dump_yaml([writer_with(), CRITIC]))
    out = command("sync_assistants", "--file", path)
    assert out.splitlines() == [
        "  consult writer.ask_critic left alone: no longer defined (--prune deletes it)",
        "No changes: the database matches the definitions, 1 consult rule left alone.",
    ]
    assert ConsultRule.objects.filter(tool_name="ask_critic").exists()

    lines = report(sync([*ASSISTANTS, writer_with(), CRITIC], prune=True))
    assert lines == ["- consult writer.ask_critic"]
    assert not ConsultRule.objects.exists()


def test_a_renamed_consult_is_deleted_and_created():
    sync(discover())
    renamed = writer_with(ConsultDefinition("critic", tool_name="get_feedback"))
    assert report(sync([*ASSISTANTS, renamed, CRITIC], prune=True)) == [
        "- consult writer.ask_critic",
        "+ consult writer.get_feedback → critic",
    ]
    assert consult_rows() == [("writer", "critic", "get_feedback", "", True, 0)]


def test_prune_deletes_an_undefined_consult_together_with_the_specialist_it_asks():
    """No refusal: the only thing that still needs the old specialist goes in the same prune."""
    sync(discover())
    old = assistant("old-bot")
    ConsultRule.objects.create(source=Assistant.objects.get(slug="writer"), specialist=old)
    out = command("sync_assistants", prune=True)
    assert out.splitlines() == [
        "- consult writer.ask_old_bot",
        "- assistant old-bot",
        "1 assistant deleted, 1 consult rule deleted.",
    ]
    assert consult_rows() == [("writer", "critic", "ask_critic", "", True, 0)]


@pytest.mark.parametrize(
    ("consults", "message"),
    [
        (
            (ASK_CRITIC, ConsultDefinition("welcome", tool_name="ask_critic")),
            "here: assistant 'writer': two consults are named 'ask_critic'.",
        ),
        (
            (ConsultDefinition("critic", tool_name="back_to_welcome"),),
            "here: assistant 'writer': consult back_to_welcome: one of its tools or handoffs "
            "already has that name.",
        ),
        (
            (ConsultDefinition("critic", tool_name="x" * 65),),
            f"here: assistant 'writer': consult {'x' * 65}: tool_name: Ensure this value has at "
            "most 64 characters (it has 65).",
        ),
        (
            (ConsultDefinition("critic", enabled="yes"),),
            "here: assistant 'writer': consults[0].enabled: Input should be a valid boolean",
        ),
    ],
)
def test_consults_are_checked_like_handoffs(consults, message):
    writer = dataclasses.replace(
        WRITER,
        consults=consults,
        handoffs=(HandoffDefinition(target="welcome", tool_name="back_to_welcome"),),
        origin="here",
    )
    with pytest.raises(DefinitionError) as error:
        sync([*ASSISTANTS, writer, CRITIC])
    assert str(error.value) == message
    assert rows() == ([], [], [], [])


def test_unknown_tools_are_a_warning_not_an_error():
    welcome = dataclasses.replace(WELCOME, tools=("list_pages", "search"), origin="here")
    out = report(sync([welcome, PAGE_EDITOR]))
    assert out[-2:] == [
        "! here: assistant 'welcome': tool 'search' is not in this installation's tool registry",
        "! here: assistant 'welcome': a handoff follows tool 'select_page', which is not among "
        "its tools",
    ]
    assert Assistant.objects.get(slug="welcome").tools == ["list_pages", "search"]


def test_rules_are_checked_as_the_admin_checks_them():
    bad = HandoffDefinition(target="welcome", parameters={"type": "object", "properties": {"x": 1}})
    editor = dataclasses.replace(PAGE_EDITOR, handoffs=(bad,), origin="here")
    with pytest.raises(DefinitionError) as error:
        sync([WELCOME, editor])
    assert str(error.value) == (
        "here: assistant 'page-editor': rule transfer_to_welcome: "
        "parameters: The schema of 'x' must be an object."
    )
    assert rows() == ([], [], [], [])


def test_python_definitions_get_the_same_type_checks():
    with pytest.raises(DefinitionError, match=r"max_steps: Input should be a valid integer"):
        sync([dataclasses.replace(WELCOME, max_steps="8", handoffs=())])
    with pytest.raises(DefinitionError, match=r"'welcome': tools: Input should be a valid list"):
        sync([dataclasses.replace(WELCOME, tools=("select_page"), handoffs=())])


# --- overrides -----------------------------------------------------------------------------


def test_overrides_change_an_assistant_per_environment(settings):
    settings.CHATAPP_ASSISTANT_OVERRIDES = {
        "page-editor": {"model": "gpt-5-mini", "provider": "openai"}
    }
    command("sync_assistants")
    editor, welcome = (Assistant.objects.get(slug=s) for s in ("page-editor", "welcome"))
    assert (editor.provider, editor.model) == ("openai", "gpt-5-mini")
    assert (welcome.provider, welcome.model) == ("", "")
    assert command("sync_assistants").startswith("No changes")  # overrides are stable

    settings.CHATAPP_ASSISTANT_OVERRIDES = {}
    out = command("sync_assistants")
    assert '~ assistant page-editor: model "gpt-5-mini" → ""' in out.splitlines()


def test_the_star_override_applies_to_all_and_a_slug_wins_over_it(settings):
    settings.CHATAPP_ASSISTANT_OVERRIDES = {
        "*": {"model": "small", "max_steps": 4},
        "page-editor": {"model": "large"},
    }
    command("sync_assistants")
    assert set(Assistant.objects.values_list("slug", "model", "max_steps")) == {
        ("welcome", "small", 4),
        ("page-editor", "large", 4),
        ("writer", "small", 4),
        ("critic", "small", 4),
    }


def test_seed_demo_applies_overrides(settings):
    settings.CHATAPP_ASSISTANT_OVERRIDES = {"welcome": {"temperature": 0.1}}
    command("seed_demo")
    assert Assistant.objects.get(slug="welcome").temperature == 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"page-editor": {"modle": "x"}},
            "CHATAPP_ASSISTANT_OVERRIDES['page-editor']: 'modle' cannot be overridden",
        ),
        (
            {"*": {"handoffs": []}},
            "CHATAPP_ASSISTANT_OVERRIDES['*']: 'handoffs' cannot be overridden",
        ),
        (
            {"writer": {"consults": []}},
            "CHATAPP_ASSISTANT_OVERRIDES['writer']: 'consults' cannot be overridden",
        ),
        (
            {"page-edtor": {"model": "x"}},
            "CHATAPP_ASSISTANT_OVERRIDES names assistants that are not defined: page-edtor.",
        ),
        (
            {"welcome": {"max_steps": "many"}},
            "CHATAPP_ASSISTANT_OVERRIDES: assistant 'welcome': max_steps: Input should be a "
            "valid integer",
        ),
        ({"welcome": "gpt-5"}, "CHATAPP_ASSISTANT_OVERRIDES['welcome'] must be a mapping"),
    ],
)
def test_bad_overrides_are_errors(settings, overrides, message):
    settings.CHATAPP_ASSISTANT_OVERRIDES = overrides
    with pytest.raises(CommandError) as error:
        command("sync_assistants")
    assert str(error.value).startswith(message)
    assert rows() == ([], [], [], [])


def test_an_override_may_name_an_assistant_defined_elsewhere(settings, tmp_path):
    """Syncing one file must not trip over the overrides of the site editor's assistants."""
    settings.CHATAPP_ASSISTANT_OVERRIDES = {"page-editor": {"model": "x"}}
    path = write(tmp_path / "a.yaml", "assistants:\n  - slug: solo\n    name: Solo\n")
    assert command("sync_assistants", file=[path]).startswith("+ assistant solo")


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
        (definitions_io.AssistantSchema, AssistantDefinition),
        (definitions_io.HandoffSchema, HandoffDefinition),
        (definitions_io.ConsultSchema, ConsultDefinition),
    ):
        fields = {f.name for f in dataclasses.fields(cls)} - {"origin"}
        assert set(schema.model_fields) == fields
    assert definitions_io.to_data(AssistantDefinition(slug="a", name="A")) == (
        definitions_io.AssistantSchema(slug="a", name="A").model_dump()
    )


# --- discovery -----------------------------------------------------------------------------


def test_discover_finds_app_modules_app_yaml_and_setting_files(settings, tmp_path, monkeypatch):
    found = {d.slug: d.origin for d in discover()}
    assert found == {
        "welcome": "assistants_registry.site_editor.assistants",
        "page-editor": "assistants_registry.site_editor.assistants",
        "writer": "assistants_registry.writers_room.assistants",
        "critic": "assistants_registry.writers_room.assistants",
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


# --- export --------------------------------------------------------------------------------


def test_export_then_sync_on_an_empty_database_then_export_gives_the_same_text(tmp_path):
    sync(discover())
    command("sync_assistants", file=[write(tmp_path / "support.yaml", SUPPORT_YAML)])
    first = command("export_assistants")
    assert (
        "    instructions: |\n      You answer questions about {{ metadata.page_id }}.\n" in first
    )
    assert "        Indented example line.\n" in first
    assert "              enum:\n                - text\n                - layout\n" in first
    assert (
        "    consults:\n      - specialist: critic\n        tool_name: second_opinion\n"
        "        description: A second opinion on an answer.\n        enabled: false\n"
        "      - specialist: welcome\n"
    ) in first
    assert first.endswith("    consults:\n      - specialist: critic\n")  # the Writer's, last

    exported = write(tmp_path / "export.yaml", first)
    HandoffRule.objects.all().delete()
    ConsultRule.objects.all().delete()
    Assistant.objects.all().delete()
    command("sync_assistants", file=[exported])
    second = command("export_assistants", output=str(tmp_path / "again.yaml"))

    assert second == "Wrote 5 assistants to " + str(tmp_path / "again.yaml") + ".\n"
    assert (tmp_path / "again.yaml").read_text(encoding="utf-8") == first
    support = HandoffRule.objects.get(source__slug="support")
    assert support.parameters["required"] == ["page_id"]
    assert (support.history, support.history_last_n, support.respond_immediately) == (
        "last_n",
        2,
        False,
    )
    assert list(
        ConsultRule.objects.filter(source__slug="support").values_list(
            "specialist__slug", "tool_name", "enabled", "order"
        )
    ) == [("critic", "second_opinion", False, 0), ("welcome", "ask_welcome", True, 1)]


def test_export_is_sorted_and_omits_defaults():
    sync(discover())
    text = command("export_assistants")
    assert text.index("- slug: page-editor") < text.index("- slug: welcome")
    assert "max_steps" not in text and "enabled" not in text
    assert "tool_name: transfer_to_page_editor" not in text  # the default name stays implicit
    assert "tool_name: edit_another_page" in text
    assert "consults:\n      - specialist: critic\n" in text
    assert "tool_name: ask_critic" not in text


# --- seed_demo -----------------------------------------------------------------------------


def test_seed_demo_creates_the_demo_and_is_idempotent():
    out = command("seed_demo")
    assert "+ assistant welcome" in out and "created page about" in out
    assert "+ consult writer.ask_critic → critic" in out  # every workflow, not only one
    before = rows()
    out = command("seed_demo")
    assert out == "The demo is ready.\n"
    assert rows() == before
