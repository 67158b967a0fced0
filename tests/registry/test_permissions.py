"""Tools need Django permissions: a user without one is not offered the tool, and a call to
it is refused before anything changes — through any assistant. Publishing is a permission of
its own. The demo user has what the demo needs, a new user nothing."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from assistants_registry.registry import registry
from assistants_registry.site_editor.models import Page
from chatapp import services
from chatapp.models import Assistant, Message
from chatapp.providers.scripted import Say
from chatapp.runs import approve, pending, say
from tests.factories import grant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def newcomer(site_editor, django_user_model):
    return django_user_model.objects.create_user("newcomer", password="pw-newcomer-1")


def test_a_new_user_is_offered_none_of_the_site_editors_tools(newcomer):
    thread = services.start_thread("welcome", user=newcomer)
    run = say(thread, "I want to edit the about page")
    assert not run.steps.filter(kind="tool_call").exists()
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "welcome" and thread.metadata == {}


def protected_tools() -> list[tuple[str, str]]:
    """Every assistant's every tool that needs a permission (after seed_demo)."""
    return [
        (assistant.slug, name)
        for assistant in Assistant.objects.order_by("slug")
        for name in assistant.tools
        if name in registry and registry.get(name).permission
    ]


ARGUMENTS = {
    "select_page": {"page": "about"},
    "set_title": {"title": "Hacked"},
    "set_body": {"text": "Hacked"},
    "set_layout": {"layout": "wide"},
    "update_settings": {"published": False},
}


def test_no_tool_that_needs_a_permission_runs_for_a_user_without_it(newcomer, script):
    found = protected_tools()
    assert {name for _, name in found} >= set(ARGUMENTS)  # the demo's tools are all here
    before = list(Page.objects.values())
    for slug, name in found:
        Assistant.objects.filter(slug=slug).update(provider="scripted")
        thread = services.start_thread(slug, user=newcomer)
        thread.metadata = {"page_id": "about"}
        thread.save()
        arguments = ARGUMENTS.get(name, {})
        model = script(Say("", calls=[(name, arguments)]), Say("I could not."))
        run = say(thread, "do it")
        assert name not in {tool.name for tool in model.requests[0].tools}
        result = Message.objects.get(run=run, role="tool")
        assert result.content.startswith(f"Error: {name} needs the permission"), result.content
        assert list(Page.objects.values()) == before  # nothing changed, nothing published


def test_publishing_is_a_permission_of_its_own(site_editor, django_user_model, script):
    editor = grant(
        django_user_model.objects.create_user("editor"),
        "site_editor.view_page",
        "site_editor.change_page",
    )
    Assistant.objects.filter(slug="page-editor").update(provider="scripted")
    thread = services.start_thread("page-editor", user=editor)
    thread.metadata = {"page_id": "about"}
    thread.save()
    script(
        Say("", calls=[("update_settings", {"published": False})]),
        Say("", calls=[("update_settings", {"show_in_menu": False})]),
        Say("Done."),
    )
    run = say(thread, "unpublish it and hide it from the menu")
    assert run.status == "awaiting_approval"  # publishing asks the user first
    run = approve(run, pending(run)[0].call_id)
    refused, done = Message.objects.filter(run=run, role="tool").order_by("id")
    assert refused.content.startswith("Error: You may not publish or unpublish pages")
    assert Page.objects.get(slug="about").settings == {
        "published": True,
        "show_in_menu": False,
    }
    assert "show in menu: no" in done.content


@override_settings(DEBUG=True)
def test_the_demo_user_gets_what_the_demo_needs(site_editor):
    call_command("ensure_demo_user", stdout=io.StringIO())
    demo = get_user_model().objects.get(username="demo")
    assert demo.has_perms(
        ["site_editor.view_page", "site_editor.change_page", "site_editor.publish_page"]
    )
    assert not get_user_model().objects.create_user("someone").get_all_permissions()


def test_the_admin_shows_which_permission_a_tool_needs(admin_client, site_editor):
    editor = Assistant.objects.get(slug="page-editor")
    change = admin_client.get(reverse("admin:chatapp_assistant_change", args=[editor.pk]))
    assert "(users need the permission site_editor.change_page)" in change.content.decode()
    preview = admin_client.get(reverse("admin:chatapp_assistant_preview", args=[editor.pk]))
    page = preview.content.decode()
    assert "Offered only to users with the permission <code>site_editor.change_page</code>" in page
