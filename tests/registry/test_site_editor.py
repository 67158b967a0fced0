"""The reference workflow with the offline model, through the Python API and the terminal."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import call_command

from assistants_registry.site_editor.models import Page
from chatapp import services
from chatapp.models import Assistant, HandoffRule, Message
from chatapp.runs import HandoffRecord, say

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_is_idempotent(site_editor):
    counts = (Page.objects.count(), Assistant.objects.count(), HandoffRule.objects.count())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert (Page.objects.count(), Assistant.objects.count(), HandoffRule.objects.count()) == counts
    assert "created" not in out.getvalue() and "updated" not in out.getvalue()


def test_the_site_editor_conversation_through_say(site_editor, user):
    thread = services.start_thread("welcome", user=user)

    run = say(thread, "I want to edit the about page")
    assert run.status == "completed", run.error
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "page-editor"
    assert thread.metadata == {"page_id": "about"}
    handoff = run.steps.get(kind="handoff")
    record = HandoffRecord.from_data(handoff.data)
    assert (record.source, record.target) == ("welcome", "page-editor")
    reply = run.messages.filter(role="assistant").last()
    assert reply.assistant.slug == "page-editor"
    assert "You are editing the page about" in reply.content  # rendered from the metadata

    run = say(thread, "set the title to Who we are")
    assert run.status == "completed", run.error
    assert Page.objects.get(slug="about").title == "Who we are"
    assert run.steps.get(kind="tool_call").data["name"] == "set_title"

    run = say(thread, "edit another page")
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "welcome"


def test_selecting_a_missing_page_keeps_the_thread_with_welcome(site_editor, user):
    thread = services.start_thread("welcome", user=user)
    run = say(thread, "I want to edit the pricing page")
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "welcome" and thread.metadata == {}
    tool = Message.objects.get(run=run, role="tool")
    assert tool.content == "Error: There is no page 'pricing'. The pages are: about, contact, home."


def test_the_page_editor_needs_a_selected_page(site_editor, user):
    thread = services.start_thread("page-editor", user=user)
    run = say(thread, "set the title to Nothing")
    assert Message.objects.get(run=run, role="tool").content.startswith(
        "Error: No page is selected"
    )


def test_the_site_editor_conversation_in_the_terminal(site_editor, user, monkeypatch):
    lines = "I want to edit the about page\nset the title to Who we are\n\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    out = io.StringIO()
    call_command("chat", "welcome", "--user", user.username, stdout=out)
    text = out.getvalue()
    assert '→ select_page({"page": "about"})' in text
    assert "⇢ Welcome → Page editor · page_id=about" in text
    assert '→ set_title({"title": "Who we are"})' in text
    assert "Page editor> " in text
    assert Page.objects.get(slug="about").title == "Who we are"


def test_the_quiet_terminal_prints_only_messages(site_editor, user, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("I want to edit the about page\n\n"))
    out = io.StringIO()
    call_command("chat", "--quiet", "--user", user.username, stdout=out)
    text = out.getvalue()
    assert "→" not in text and "⇢" not in text
    assert "Page editor> Page editor (offline model): You are editing the page about." in text
