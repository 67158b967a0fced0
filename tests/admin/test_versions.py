"""Versions in the admin: one per save, the diff, restore (and who may restore), read-only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from chatapp.models import Assistant, AssistantVersion
from tests.admin.support import assistant_data, rule_fields, text, url
from tests.factories import assistant as make_assistant
from tests.factories import rule as make_rule

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """Staff who may view assistants and versions but change nothing."""
    from django.contrib.auth.models import Permission

    reader = django_user_model.objects.create_user("reader", password="pw", is_staff=True)
    reader.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="chatapp",
            codename__in=["view_assistant", "view_assistantversion", "view_handoffrule"],
        )
    )
    client = Client()
    client.force_login(reader)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- versions ----------------------------------------------------------------------------------


def test_an_admin_save_with_a_changed_rule_records_one_version(admin_client, demo):
    editor = demo["page-editor"]
    (back,) = editor.handoff_rules.all()
    before = list(editor.versions.values_list("number", flat=True))
    data = assistant_data(
        editor,
        instructions=editor.instructions + " Be brief.",
        rules=[rule_fields(back, description="Back to the welcome desk.")],
    )
    assert admin_client.post(url("assistant_change", editor.pk), data).status_code == 302
    after = list(editor.versions.values_list("number", flat=True))
    assert len(after) == len(before) + 1
    latest = editor.versions.order_by("-number").first()
    assert latest.snapshot["rules"][0]["description"] == "Back to the welcome desk."


def test_the_versions_page_shows_diffs_and_restore_brings_back_the_old(admin_client, demo):
    editor = demo["page-editor"]
    original = editor.instructions
    old = editor.versions.order_by("-number").first()
    data = assistant_data(editor, instructions="You edit {{ metadata.page_id }} tersely.")
    assert admin_client.post(url("assistant_change", editor.pk), data).status_code == 302

    response = admin_client.get(url("assistant_versions", editor.pk))
    page = response.content.decode()
    assert re.search(
        r'chatapp-diff__line--remove">-\s+You are editing the page \{\{ metadata.page_id \}\}',
        page,
    )
    assert re.search(r'chatapp-diff__line--add">\+\s+You edit \{\{ metadata.page_id \}\}', page)
    assert f"Restore v{old.number}" in page
    assert "used by 0 runs" in text(response)

    response = admin_client.post(url("assistant_restore", editor.pk, old.number), follow=True)
    assert response.status_code == 200
    editor.refresh_from_db()
    assert editor.instructions == original
    newest = editor.versions.order_by("-number").first()
    assert newest.number == old.number + 2 and newest.snapshot == old.snapshot
    assert f"Restored v{old.number} of Page editor; saved as v{newest.number}." in messages_of(
        response
    )


def test_restoring_needs_the_change_permission_and_a_post(viewer, admin_client, demo):
    editor = demo["page-editor"]
    first = editor.versions.order_by("number").first()
    Assistant.objects.filter(pk=editor.pk).update(instructions="Changed.")
    editor.refresh_from_db()
    editor.save()  # records a version, so the first one is no longer the latest

    response = viewer.get(url("assistant_versions", editor.pk))
    assert response.status_code == 200 and "Restore v" not in response.content.decode()
    assert viewer.post(url("assistant_restore", editor.pk, first.number)).status_code == 403
    assert admin_client.get(url("assistant_restore", editor.pk, first.number)).status_code == 405
    editor.refresh_from_db()
    assert editor.instructions == "Changed."


def test_a_restore_that_cannot_be_done_is_an_admin_error_message(admin_client):
    source, target = make_assistant("source"), make_assistant("target")
    handoff = make_rule(source, target)
    with_rule = source.versions.order_by("-number").first()
    handoff.delete()
    target.delete()
    response = admin_client.post(url("assistant_restore", source.pk, with_rule.number), follow=True)
    assert response.status_code == 200
    assert any("no longer exist: target" in m for m in messages_of(response))


def test_versions_are_read_only_in_the_admin(admin_client, demo):
    version = AssistantVersion.objects.first()
    assert admin_client.get(url("assistantversion_add")).status_code == 403
    response = admin_client.post(url("assistantversion_change", version.pk), {"number": 99})
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.number != 99
