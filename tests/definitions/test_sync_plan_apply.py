"""sync_assistants and seed_demo: creating, updating only what changed, the dry run, and a
second run that writes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from assistants_registry.data_analyst.assistants import DATA_ANALYST
from assistants_registry.site_editor.assistants import PAGE_EDITOR, WELCOME
from chatapp.definitions import yaml_files
from chatapp.definitions.report import report
from chatapp.definitions.sync import plan, sync
from chatapp.models import Assistant, AssistantVersion, ConsultRule, HandoffRule
from tests.definitions.support import SITE_EDITOR as ASSISTANTS
from tests.definitions.support import command, rows, write

pytestmark = pytest.mark.django_db(transaction=True)


# --- sync_assistants -----------------------------------------------------------------------


def test_sync_creates_the_discovered_assistants_and_rules():
    out = command("sync_assistants")
    assert set(Assistant.objects.values_list("slug", flat=True)) == {
        "welcome",
        "page-editor",
        "writer",
        "critic",
        "data-analyst",
    }
    welcome = Assistant.objects.get(slug="welcome")
    assert welcome.is_entry and welcome.tools == ["select_page", "list_pages"]
    handoff = HandoffRule.objects.get(source=welcome, target__slug="page-editor")
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
        "+ rule welcome.transfer_to_data_analyst → data-analyst",
        "+ assistant page-editor",
        "+ rule page-editor.edit_another_page → welcome",
        "+ assistant writer",
        "+ consult writer.ask_critic → critic",
        "+ assistant critic",
        "+ assistant data-analyst",
        "5 assistants created, 3 rules created, 1 consult rule created.",
    ]
    consult = ConsultRule.objects.get()
    assert (consult.source.slug, consult.specialist.slug, consult.tool_name) == (
        "writer",
        "critic",
        "ask_critic",
    )
    assert (consult.description, consult.enabled, consult.order) == ("", True, 0)
    assert AssistantVersion.objects.count() == 5  # one version per assistant, not per row


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
    path = write(tmp_path / "a.yaml", yaml_files.dump_yaml([WELCOME, editor]))

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
        yaml_files.dump_yaml([dataclasses.replace(WELCOME, model="gpt-x"), PAGE_EDITOR]),
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
    lines = report(sync([WELCOME, renamed, DATA_ANALYST], prune=True))
    assert lines == [
        "- rule page-editor.edit_another_page",
        "+ rule page-editor.choose_page → welcome",
    ]
    assert list(
        HandoffRule.objects.filter(source__slug="page-editor").values_list("tool_name", flat=True)
    ) == ["choose_page"]


# --- seed_demo -----------------------------------------------------------------------------


def test_seed_demo_creates_the_demo_and_is_idempotent():
    out = command("seed_demo")
    assert "+ assistant welcome" in out and "created page about" in out
    assert "+ consult writer.ask_critic → critic" in out  # every workflow, not only one
    before = rows()
    out = command("seed_demo")
    assert out == "The demo is ready.\n"
    assert rows() == before
