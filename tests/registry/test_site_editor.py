"""The reference workflow, through chatapp.testing (with the offline model and with a
scripted one) and the terminal."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import call_command

from assistants_registry.site_editor.models import Page
from chatapp.models import Assistant, HandoffRule
from chatapp.runs import HandoffRecord
from chatapp.testing import call, say

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_is_idempotent(site_editor):
    counts = (Page.objects.count(), Assistant.objects.count(), HandoffRule.objects.count())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert (Page.objects.count(), Assistant.objects.count(), HandoffRule.objects.count()) == counts
    assert "created" not in out.getvalue() and "updated" not in out.getvalue()


def test_the_site_editor_conversation_with_the_offline_model(site_editor, conversation):
    chat = conversation("welcome")  # no script: the assistants' own (offline) model

    chat.send("I want to edit the about page")
    assert chat.status == "completed"
    assert chat.tool_calls == [("select_page", {"page": "about"})]
    assert chat.handoffs == [("welcome", "page-editor")]
    assert chat.assistant == "page-editor" and chat.metadata == {"page_id": "about"}
    assert "You are editing the page about" in chat.reply  # rendered from the metadata
    handoff = chat.run.steps.get(kind="handoff")
    record = HandoffRecord.from_data(handoff.data)
    assert (record.source, record.target) == ("welcome", "page-editor")

    chat.send("set the title to Who we are")
    assert chat.tool_calls == [("set_title", {"title": "Who we are"})]
    assert Page.objects.get(slug="about").title == "Who we are"

    chat.send("edit another page")
    assert chat.assistant == "welcome"


def test_editing_the_about_page(site_editor, conversation):
    """The README's example: a scripted model, the real tools, rules and database."""
    chat = conversation("welcome", model=[call("select_page", page="about"), say("Which field?")])
    chat.send("I want to edit the about page")
    assert chat.assistant == "page-editor" and chat.metadata["page_id"] == "about"
    assert chat.tool_results == [
        (
            "select_page",
            "Opened About us (about): single column layout; published: yes, show in menu: yes.",
            False,
        )
    ]
    assert chat.reply == "Which field?"


def test_publishing_waits_for_the_users_approval(site_editor, conversation):
    chat = conversation(
        "page-editor",
        model=[call("update_settings", published=False), say("Unpublished."), say("Kept.")],
    )
    chat.thread.metadata = {"page_id": "about"}
    chat.thread.save()
    chat.send("unpublish it")
    assert chat.status == "awaiting_approval" and chat.tool_calls == []
    assert [(p.name, p.arguments) for p in chat.pending] == [
        ("update_settings", '{"published": false}')
    ]
    chat.approve()
    assert chat.reply == "Unpublished." and chat.tool_calls == [
        ("update_settings", {"published": False})
    ]
    assert Page.objects.get(slug="about").settings["published"] is False
    chat.retry()  # the answer again: a tool's effect is real, it stays
    assert chat.reply == "Kept." and Page.objects.get(slug="about").settings["published"] is False


def test_selecting_a_missing_page_keeps_the_thread_with_welcome(site_editor, conversation):
    chat = conversation("welcome")
    chat.send("I want to edit the pricing page")
    assert chat.assistant == "welcome" and chat.metadata == {}
    assert chat.tool_results == [
        ("select_page", "There is no page 'pricing'. The pages are: about, contact, home.", True)
    ]


def test_the_page_editor_needs_a_selected_page(site_editor, conversation):
    chat = conversation("page-editor")
    chat.send("set the title to Nothing")
    ((name, output, is_error),) = chat.tool_results
    assert name == "set_title" and is_error and output.startswith("No page is selected")


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
