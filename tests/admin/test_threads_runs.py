"""Threads and runs in the admin: read-only messages, metadata, filters, the run timeline."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from chatapp import services
from chatapp.models import Message, Run
from chatapp.providers import registry
from chatapp.providers.openai import OpenAIProvider
from chatapp.providers.scripted import Say
from chatapp.runs import say
from tests.admin.support import text, url
from tests.factories import assistant as make_assistant

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


# --- threads and runs --------------------------------------------------------------------------


def test_the_thread_page_shows_messages_read_only_and_saves_metadata(admin_client, run):
    thread = run.thread
    response = admin_client.get(url("thread_change", thread.pk))
    page = text(response)
    assert "I want to edit the about page" in page and "select_page" in page
    assert 'name="messages-0-content"' not in response.content.decode()  # read-only

    messages = list(thread.messages.order_by("id"))
    data = {
        "owner": thread.owner_id,
        "title": thread.title,
        "current_assistant": thread.current_assistant_id,
        "metadata": '{"page_id": "home"}',
        "messages-TOTAL_FORMS": len(messages),
        "messages-INITIAL_FORMS": len(messages),
        "messages-MIN_NUM_FORMS": 0,
        "messages-MAX_NUM_FORMS": 1000,
    }
    for i, message in enumerate(messages):
        data[f"messages-{i}-id"] = message.pk
        data[f"messages-{i}-thread"] = thread.pk
    assert admin_client.post(url("thread_change", thread.pk), data).status_code == 302
    thread.refresh_from_db()
    assert thread.metadata == {"page_id": "home"}
    assert Message.objects.filter(thread=thread).count() == len(messages)

    data["metadata"] = '["not", "an", "object"]'
    response = admin_client.post(url("thread_change", thread.pk), data)
    assert response.status_code == 200
    assert "metadata" in response.context["adminform"].form.errors


def test_the_thread_list_searches_and_filters(admin_client, run, demo):
    found = admin_client.get(url("thread_changelist"), {"q": "ada"})
    assert [t.pk for t in found.context["cl"].result_list] == [run.thread_id]
    on_welcome = admin_client.get(
        url("thread_changelist"), {"current_assistant__id__exact": demo["welcome"].pk}
    )
    assert list(on_welcome.context["cl"].result_list) == []
    consultations = admin_client.get(url("thread_changelist"), {"kind": "consultation"})
    assert list(consultations.context["cl"].result_list) == []
    conversations = admin_client.get(url("thread_changelist"), {"kind": "conversation"})
    assert [t.pk for t in conversations.context["cl"].result_list] == [run.thread_id]


def test_the_run_timeline_shows_tool_calls_and_the_handoff(admin_client, run):
    response = admin_client.get(url("run_change", run.pk))
    page = text(response)
    assert "Welcome called select_page" in page
    assert 'Arguments{ "page": "about" }' in page
    assert "Opened About us (about)" in page
    assert "Welcome → Page editor" in page and "page_id: about" in page
    assert "Page editor spoke" in page and "You are editing the page about" in page
    assert "tokens:" in page
    kinds = [item.kind for item in response.context["timeline"]]
    assert kinds == list(run.steps.order_by("index").values_list("kind", flat=True))


def test_a_failed_tool_call_is_styled_as_an_error(admin_client, demo, user):
    thread = services.start_thread("welcome", user=user)
    finished = say(thread, "I want to edit the nowhere page")
    response = admin_client.get(url("run_change", finished.pk))
    assert 'class="chatapp-pre chatapp-error"' in response.content.decode()
    assert "There is no page" in text(response)


def test_runs_are_read_only_but_deletable(admin_client, run):
    assert admin_client.get(url("run_add")).status_code == 403
    response = admin_client.post(url("run_change", run.pk), {"status": "failed"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == "completed"
    listing = text(admin_client.get(url("run_changelist")))
    assert "Completed" in listing and re.search(r"\d+ ms|\d+\.\d\d s", listing)
    response = admin_client.post(url("run_delete", run.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists()


@pytest.fixture
def model_server_user(user, settings):
    """An assistant on a model server that fails, reached with credentials in its URL."""
    from tests.fake_model import fake_model_in_thread, head

    with fake_model_in_thread([head(503, {"error": {"message": "overloaded"}})]) as model:
        settings.OPENAI_BASE_URL = model.url.replace("http://", "http://ops:hunter2@")
        settings.OPENAI_API_KEY = "k"
        settings.OPENAI_MAX_RETRIES = 0
        bot = make_assistant("remote", name="Remote", provider="openai")
        yield services.start_thread(bot, user=user), model.url


def test_a_failed_model_call_is_plain_for_users_and_detailed_for_staff(
    admin_client, model_server_user, user
):
    thread, url_without_credentials = model_server_user
    run = say(thread, "hello")
    assert run.error == "The model server answered 503: overloaded"
    assert run.error_detail == f"{url_without_credentials} answered 503: overloaded"
    page = text(admin_client.get(url("run_change", run.pk)))
    assert run.error in page and url_without_credentials in page and "hunter2" not in page
    client = Client()
    client.force_login(user)
    chat = client.get(reverse("thread", args=[thread.pk])).content.decode()
    assert "overloaded" in chat and "127.0.0.1" not in chat and "hunter2" not in chat


def test_an_answer_cut_by_the_model_shows_as_interrupted_in_the_timeline(admin_client, user):
    from tests.fake_model import fake_model_in_thread, finish
    from tests.fake_model import text as said

    with fake_model_in_thread([said("Once upon a"), finish("length")]) as model:
        provider = OpenAIProvider(base_url=model.url, api_key="k", max_retries=0)
        provider.name = "cutting"
        registry.register(provider, replace=True)
        try:
            bot = make_assistant("teller", name="Teller", provider="cutting")
            run = say(services.start_thread(bot, user=user), "a story")
        finally:
            registry.unregister("cutting")
    page = text(admin_client.get(url("run_change", run.pk)))
    assert "The answer was cut off: the model reached its length limit." in page
    assert "Teller spoke" in page and "Once upon a" in page and "interrupted" in page


def test_the_timeline_shows_who_approved_or_rejected_what_and_when(
    admin_client, site_editor, user, script
):
    from assistants_registry.site_editor.models import Page
    from chatapp.runs import approve, pending, reject

    make_assistant("publisher", name="Publisher", tools=["update_settings"])
    Page.objects.create(slug="news", title="News", settings={"published": False})
    thread = services.start_thread("publisher", user=user)
    thread.metadata = {"page_id": "news"}
    thread.save()
    script(
        Say("", calls=[("update_settings", {"published": True})]),
        Say("", calls=[("update_settings", {"published": True})]),
        Say("Published."),
    )
    run = say(thread, "publish it")
    waiting = text(admin_client.get(url("run_change", run.pk)))
    assert "Publisher asked the user before calling update_settings" in waiting
    assert "waiting for the user's decision" in waiting
    run = reject(run, pending(run)[0].call_id, reason="check the date first")
    run = approve(run, pending(run)[0].call_id)
    assert run.status == Run.Status.COMPLETED
    page = text(admin_client.get(url("run_change", run.pk)))
    assert f"update_settings — rejected by {user.username}" in page
    assert "reason: check the date first" in page
    assert f"update_settings — approved by {user.username}" in page
    assert re.search(rf"approved by {user.username} on \w+", page)
