"""The records the engine writes on messages and steps: one writer, read back typed."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from chatapp import services
from chatapp.models import Message, RunStep
from chatapp.providers.scripted import Say
from chatapp.runs import (
    HandoffRecord,
    MessageStepRecord,
    ToolResultRecord,
    ToolStepRecord,
    say,
)
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "record",
    [
        HandoffRecord("a", "A", "b", "B", {"page_id": "about"}, "transfer_to_b", "tool", 7),
        ToolResultRecord("ask_critic", is_error=True, consult=True, specialist="Critic"),
        ToolStepRecord("call_1", "add", '{"a": 1}', "2", False, {"sum": 2}),
        MessageStepRecord(12, 1, {"prompt_tokens": 3}, 2),
    ],
)
def test_a_record_reads_back_what_it_wrote(record):
    assert type(record).from_data(record.to_data()) == record


def test_a_record_reads_rows_with_missing_or_unknown_keys():
    assert ToolResultRecord.from_data({"name": "x", "later": 1}) == ToolResultRecord("x")
    assert ToolStepRecord.from_data(None).output is None
    assert not HandoffRecord.is_one({"name": "x"}) and HandoffRecord.is_one({"kind": "handoff"})


def test_a_handoff_writes_the_same_record_on_its_step_and_its_event_message(user, script):
    triage, editor = assistant("triage"), assistant("editor", name="Page editor")
    rule(triage, editor, parameters={"type": "object", "properties": {"page": {"type": "string"}}})
    script(Say("", calls=[("transfer_to_editor", {"page": "about"})]), Say("Editing."))
    run = say(services.start_thread(triage, user=user), "edit about")
    step = run.steps.get(kind=RunStep.Kind.HANDOFF)
    event = Message.objects.get(run=run, role=Message.Role.EVENT)
    record = HandoffRecord.from_data(step.data)
    assert HandoffRecord.from_data(event.data) == record
    assert (record.source_name, record.target_name, record.metadata) == (
        "Triage",
        "Page editor",
        {"page": "about"},
    )
    assert event.content == record.note == "Handed from Triage to Page editor; page=about"
    answer = Message.objects.get(run=run, role=Message.Role.TOOL)
    assert ToolResultRecord.from_data(answer.data) == ToolResultRecord("transfer_to_editor")


def test_the_migration_renames_the_old_keys_of_handoff_steps(user, script):
    triage, editor = assistant("triage"), assistant("editor", name="Page editor")
    rule(triage, editor)
    script(Say("", calls=[("transfer_to_editor", {})]), Say("Editing."))
    run = say(services.start_thread(triage, user=user), "edit")
    step = run.steps.get(kind=RunStep.Kind.HANDOFF)
    old = {"rule_id": 1, "tool": "transfer_to_editor", "trigger": "tool", "metadata": {}}
    RunStep.objects.filter(pk=step.pk).update(data={**old, "from": "triage", "to": "editor"})

    migration = importlib.import_module("chatapp.migrations.0005_handoff_step_records")
    migration.forwards(apps, None)

    record = HandoffRecord.from_data(RunStep.objects.get(pk=step.pk).data)
    assert (record.source, record.target, record.target_name) == ("triage", "editor", "Page editor")
    assert record.tool == "transfer_to_editor"
