"""Handoffs: a rule becomes a tool, moves the thread, writes metadata, renders instructions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from assistants_registry.parameters import parameters_model
from chatapp import services
from chatapp.models import HandoffRule, Message, Run
from chatapp.providers.scripted import Say
from chatapp.runs import events, say, store
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)

PAGE_ID = {"type": "object", "properties": {"page_id": {"type": "string"}}, "required": ["page_id"]}


@pytest.fixture
def desk(user):
    triage = assistant("triage", description="Sorts requests.")
    editor = assistant(
        "editor",
        name="Page editor",
        description="Edits one page.",
        instructions="You are editing the page {{ metadata.page_id }} for {{ user.username }}.",
    )
    rule(triage, editor, parameters=PAGE_ID)
    thread = services.start_thread(triage, user=user)
    return thread, triage, editor


def test_a_rule_is_offered_as_a_tool_with_its_schema(desk, script):
    thread, _, _ = desk
    model = script(Say("Hi."))
    say(thread, "hello")
    (definition,) = model.requests[0].tools
    assert definition.name == "transfer_to_editor"
    assert definition.description == "Hand the conversation to Page editor. Edits one page."
    assert definition.parameters["properties"] == {"page_id": {"type": "string"}}
    assert definition.parameters["required"] == ["page_id"]


def test_handoff_switches_assistant_metadata_and_instructions(desk, script):
    thread, _, editor = desk
    model = script(
        Say("Let me pass you on.", calls=[("transfer_to_editor", {"page_id": "about"})]),
        Say("Editing about now."),
    )
    seen = []
    run = say(thread, "edit about", on_event=seen.append)
    thread.refresh_from_db()
    assert thread.current_assistant == editor
    assert thread.metadata == {"page_id": "about"}
    handoff = next(e for e in seen if isinstance(e, events.Handoff))
    assert (handoff.source, handoff.target, handoff.metadata) == (
        "triage",
        "editor",
        {"page_id": "about"},
    )
    # The new assistant answers in the same run, with instructions rendered from the metadata.
    assert model.requests[1].instructions == "You are editing the page about for ada."
    assert model.requests[1].assistant_name == "Page editor"
    note = Message.objects.get(thread=thread, role="event")
    assert note.content == "Handed from Triage to Page editor; page_id=about"
    assert run.status == Run.Status.COMPLETED
    assert list(run.steps.values_list("kind", flat=True)) == [
        "message",
        "tool_call",
        "handoff",
        "message",
    ]
    assert run.steps.get(kind="handoff").data["metadata"] == {"page_id": "about"}
    replies = Message.objects.filter(run=run, role="assistant").order_by("id")
    assert [m.assistant.slug for m in replies] == ["triage", "editor"]


def test_handoff_is_one_transaction(desk, script, monkeypatch):
    thread, triage, _ = desk
    script(Say("", calls=[("transfer_to_editor", {"page_id": "about"})]))
    real_create = store.RunStep.objects.create

    def broken_create(**kwargs):
        if kwargs.get("kind") == "handoff":
            raise RuntimeError("disk full")
        return real_create(**kwargs)

    monkeypatch.setattr(store.RunStep.objects, "create", broken_create)
    run = say(thread, "edit about")
    thread.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert thread.current_assistant == triage and thread.metadata == {}
    assert not Message.objects.filter(thread=thread, role="event").exists()


def test_handoff_arguments_are_validated_before_anything_changes(desk, script):
    thread, triage, _ = desk
    model = script(Say("", calls=[("transfer_to_editor", {"page": "about"})]), Say("Oops."))
    say(thread, "edit about")
    thread.refresh_from_db()
    assert thread.current_assistant == triage and thread.metadata == {}
    error = model.requests[1].messages[-1]
    assert error.role == "tool"
    assert error.content.startswith("Error: Invalid arguments for transfer_to_editor")


def test_required_metadata_refuses_with_a_clear_error(desk, script):
    thread, triage, editor = desk
    rule_back = rule(editor, triage, required_metadata=["approved"])
    thread.current_assistant = editor
    thread.save()
    model = script(Say("", calls=[(rule_back.tool_name, {})]), Say("Not yet."))
    say(thread, "go back")
    thread.refresh_from_db()
    assert thread.current_assistant == editor
    assert model.requests[1].messages[-1].content == (
        "Error: Cannot hand off to Triage yet: approved must be known first."
    )


def test_no_handoff_outside_the_rules(desk, script):
    thread, triage, _ = desk
    HandoffRule.objects.update(enabled=False)
    model = script(Say("", calls=[("transfer_to_editor", {"page_id": "x"})]), Say("Cannot."))
    say(thread, "edit x")
    thread.refresh_from_db()
    assert thread.current_assistant == triage
    assert model.requests[0].tools == ()
    assert (
        model.requests[1].messages[-1].content
        == "Error: Triage has no tool named 'transfer_to_editor'."
    )


def test_only_one_handoff_per_turn(desk, script, user):
    thread, triage, _ = desk
    other = assistant("other")
    rule(triage, other)
    model = script(
        Say("", calls=[("transfer_to_editor", {"page_id": "a"}), ("transfer_to_other", {})]),
        Say("Editor here."),
    )
    say(thread, "both")
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "editor"
    results = {m.data["name"]: m.content for m in Message.objects.filter(role="tool")}
    assert (
        results["transfer_to_other"] == "Error: Only one handoff per turn; this one was not made."
    )
    assert len(model.requests) == 2


def test_handoff_ping_pong_stops_with_a_reason(desk, script, settings):
    thread, triage, editor = desk
    settings.CHATAPP_MAX_HANDOFFS_PER_RUN = 3
    rule(editor, triage)
    script(
        *[
            Say("", calls=[("transfer_to_editor", {"page_id": "a"})]),
            Say("", calls=[("transfer_to_triage", {})]),
        ]
        * 3
    )
    run = say(thread, "bounce")
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("Stopped after 3 handoffs in one run")
    assert run.steps.filter(kind="handoff").count() == 3


def test_respond_immediately_false_ends_the_run_at_the_handoff(desk, script):
    thread, _, editor = desk
    HandoffRule.objects.update(respond_immediately=False)
    model = script(Say("Passing you on.", calls=[("transfer_to_editor", {"page_id": "a"})]))
    run = say(thread, "edit a")
    thread.refresh_from_db()
    assert run.status == Run.Status.COMPLETED and thread.current_assistant == editor
    assert len(model.requests) == 1


def test_extra_instructions_are_rendered_for_the_target(desk, script):
    thread, _, _ = desk
    HandoffRule.objects.update(extra_instructions="Start by showing {{ metadata.page_id }}.")
    model = script(Say("", calls=[("transfer_to_editor", {"page_id": "home"})]), Say("ok"))
    say(thread, "edit home")
    assert model.requests[1].instructions == (
        "You are editing the page home for ada.\n\nStart by showing home."
    )


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array"},
        {"type": "object", "properties": {"x": {"type": "object"}}},
        {"type": "object", "properties": {}, "required": ["x"]},
        {"type": "object", "properties": {"bad name": {"type": "string"}}},
        {"type": "object", "properties": {"x": {"enum": []}}},
    ],
)
def test_unsupported_parameter_schemas_are_refused_on_save(desk, schema):
    _, triage, editor = desk
    with pytest.raises(ValidationError):
        HandoffRule(source=editor, target=triage, parameters=schema).full_clean()
    with pytest.raises(ValueError):
        parameters_model(schema)


def test_after_tool_rule_needs_a_tool_name(desk):
    _, triage, editor = desk
    with pytest.raises(ValidationError, match="Name the tool"):
        HandoffRule(source=editor, target=triage, trigger="after_tool").full_clean()
