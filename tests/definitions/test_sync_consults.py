"""Consult rules as code: created, updated, renamed, pruned, and checked like handoffs."""

from __future__ import annotations

import dataclasses

import pytest

from assistants_registry.definitions import (
    AssistantDefinition,
    ConsultDefinition,
    DefinitionError,
    HandoffDefinition,
)
from assistants_registry.writers_room.assistants import CRITIC, WRITER
from chatapp.definitions import yaml_files
from chatapp.definitions.discovery import discover
from chatapp.definitions.report import report
from chatapp.definitions.sync import plan, sync
from chatapp.models import Assistant, ConsultRule
from tests.definitions.support import SITE_EDITOR as ASSISTANTS
from tests.definitions.support import command, rows, write
from tests.factories import assistant

pytestmark = pytest.mark.django_db(transaction=True)


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
    path = write(tmp_path / "a.yaml", yaml_files.dump_yaml([writer_with(), CRITIC]))
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
