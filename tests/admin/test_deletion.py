"""Deleting an assistant in the admin is refused while a rule or a thread depends on it."""

from __future__ import annotations

import pytest

from chatapp import services
from chatapp.models import Assistant
from tests.admin.support import text, url
from tests.factories import assistant as make_assistant

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


# --- deleting is refused while something depends on the assistant ------------------------------


def test_deleting_a_rule_target_is_refused_with_what_blocks_it(admin_client, demo):
    editor = demo["page-editor"]
    response = admin_client.post(url("assistant_delete", editor.pk), {"post": "yes"})
    assert response.status_code == 200
    page = text(response)
    assert "would require deleting the following protected related objects" in page
    assert "Welcome → Page editor" in page and "Nothing was deleted" in page
    assert Assistant.objects.filter(pk=editor.pk).exists()


def test_deleting_an_assistant_a_thread_is_on_is_refused(admin_client, demo, user):
    lonely = make_assistant("lonely", provider="")
    services.start_thread(lonely, user=user, title="Still talking")
    response = admin_client.post(url("assistant_delete", lonely.pk), {"post": "yes"})
    assert response.status_code == 200
    assert "Thread: Still talking" in text(response)
    assert Assistant.objects.filter(pk=lonely.pk).exists()


def test_the_bulk_delete_action_refuses_cleanly(admin_client, demo, user):
    lonely = make_assistant("lonely", provider="")
    services.start_thread(lonely, user=user, title="Still talking")
    count = Assistant.objects.count()
    data = {
        "action": "delete_selected",
        "_selected_action": [demo["page-editor"].pk, lonely.pk],
        "post": "yes",
    }
    response = admin_client.post(url("assistant_changelist"), data)
    assert response.status_code == 200
    page = text(response)
    assert "protected related objects" in page and "Nothing was deleted" in page
    assert "Welcome → Page editor" in page and "Still talking" in page
    assert Assistant.objects.count() == count


def test_an_assistant_nothing_depends_on_can_be_deleted(admin_client, demo):
    spare = make_assistant("spare", provider="")
    response = admin_client.post(url("assistant_delete", spare.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Assistant.objects.filter(pk=spare.pk).exists()
