"""sync_assistants --prune: what is no longer defined is deleted, or left alone without it;
an assistant still in use is refused and nothing is written."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.management.base import CommandError

from assistants_registry.data_analyst.assistants import DATA_ANALYST
from assistants_registry.definitions import ConsultDefinition, HandoffDefinition
from assistants_registry.site_editor.assistants import PAGE_EDITOR, WELCOME
from chatapp import services
from chatapp.definitions import yaml_files
from chatapp.definitions.discovery import discover
from chatapp.definitions.sync import sync
from chatapp.models import Assistant, ConsultRule, HandoffRule, Run
from tests.definitions.support import SITE_EDITOR as ASSISTANTS
from tests.definitions.support import command, rows, write
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)


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
    assert Assistant.objects.count() == 5 and HandoffRule.objects.count() == 3


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
    assert Assistant.objects.count() == 5
    assert list(ConsultRule.objects.values_list("tool_name", flat=True)) == ["ask_critic"]


@pytest.mark.parametrize("use", ["thread", "run", "kept rule", "consult"])
def test_prune_refuses_an_assistant_in_use_and_writes_nothing(use, user, tmp_path):
    sync(ASSISTANTS)
    old = assistant("old-bot")
    welcome = WELCOME
    if use == "thread":
        services.start_thread(old, user=user)
    elif use == "run":
        Run.objects.create(thread=services.start_thread("welcome", user=user), assistant=old)
    elif use == "consult":
        welcome = dataclasses.replace(WELCOME, consults=(ConsultDefinition("old-bot"),))
    else:
        welcome = dataclasses.replace(
            WELCOME, handoffs=(*WELCOME.handoffs, HandoffDefinition(target="old-bot"))
        )
    # Other changes are planned too: none of them may be written.
    editor = dataclasses.replace(PAGE_EDITOR, model="gpt-x")
    path = write(tmp_path / "a.yaml", yaml_files.dump_yaml([welcome, editor, DATA_ANALYST]))
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
