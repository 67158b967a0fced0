"""Who may see the admin: every page renders for staff under the CSP (no inline script or
style), anyone else is sent to the login or refused; the links to the custom pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from chatapp.models import Assistant, Run
from tests.admin.support import url
from tests.html import inline_code

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def non_staff(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_without_permissions(django_user_model: Any) -> Client:
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(clerk)
    return client


# --- every page renders for staff, under the CSP, and is refused to others ---------------------

PAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "admin index": lambda o: reverse("admin:index"),
    "app index": lambda o: reverse("admin:app_list", args=["chatapp"]),
    "assistant list": lambda o: url("assistant_changelist"),
    "assistant add": lambda o: url("assistant_add"),
    "assistant change": lambda o: url("assistant_change", o["editor"].pk),
    "assistant preview": lambda o: url("assistant_preview", o["editor"].pk),
    "assistant versions": lambda o: url("assistant_versions", o["editor"].pk),
    "assistant delete": lambda o: url("assistant_delete", o["editor"].pk),
    "workflow diagram": lambda o: url("assistant_diagram"),
    "version list": lambda o: url("assistantversion_changelist"),
    "version detail": lambda o: url("assistantversion_change", o["version"].pk),
    "thread list": lambda o: url("thread_changelist"),
    "thread change": lambda o: url("thread_change", o["run"].thread_id),
    "run list": lambda o: url("run_changelist"),
    "run change": lambda o: url("run_change", o["run"].pk),
}


@pytest.fixture
def objects(run: Run, demo: dict[str, Assistant]) -> dict[str, Any]:
    editor = demo["page-editor"]
    return {"run": run, "editor": editor, "version": editor.versions.first()}


@pytest.mark.parametrize("page", PAGES)
def test_every_admin_page_renders_for_staff_under_the_csp(admin_client, objects, page):
    response = admin_client.get(PAGES[page](objects))
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert inline_code(response.content.decode()) == []


@pytest.mark.parametrize("page", PAGES)
def test_every_admin_page_sends_a_non_staff_user_to_the_login(non_staff, client, objects, page):
    for visitor in (non_staff, client):  # logged in but not staff; anonymous
        response = visitor.get(PAGES[page](objects))
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


def test_staff_without_permission_are_refused_the_custom_pages(staff_without_permissions, demo):
    editor = demo["page-editor"]
    for page in (
        url("assistant_preview", editor.pk),
        url("assistant_versions", editor.pk),
        url("assistant_diagram"),
        url("assistant_changelist"),
    ):
        assert staff_without_permissions.get(page).status_code == 403
    restore = url("assistant_restore", editor.pk, 1)
    assert staff_without_permissions.post(restore).status_code == 403


def test_the_admin_links_to_the_custom_pages(admin_client, demo):
    editor = demo["page-editor"]
    change = admin_client.get(url("assistant_change", editor.pk)).content.decode()
    assert url("assistant_preview", editor.pk) in change
    assert url("assistant_versions", editor.pk) in change
    diagram = url("assistant_diagram")
    assert diagram in change
    assert diagram in admin_client.get(url("assistant_changelist")).content.decode()
    assert diagram in admin_client.get(reverse("admin:index")).content.decode()
    assert diagram in admin_client.get(reverse("admin:app_list", args=["chatapp"])).content.decode()
