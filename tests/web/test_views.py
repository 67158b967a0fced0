"""Pages over HTTP: logging in, the thread list, starting, renaming and deleting threads, the
thread page; who may touch what; and the browser-side invariants (CSP, no inline script or
style, escaped user text)."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chatapp import services
from chatapp.models import Message, Run, Thread
from chatapp.web.access import owned_threads
from tests.html import inline_code

pytestmark = pytest.mark.django_db


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def ada(client: Client, user: Any) -> Client:
    """The client, logged in as ada (the `user` fixture)."""
    client.force_login(user)
    return client


@pytest.fixture
def thread(site_editor: None, user: Any) -> Thread:
    return services.start_thread("welcome", user=user, title="Ada's chat")


@pytest.fixture
def bobs_thread(site_editor: None, other_user: Any) -> Thread:
    return services.start_thread("welcome", user=other_user, title="Bob's secret plans")


def thread_urls(thread_id: Any) -> dict[str, str]:
    return {
        name: reverse(name, kwargs={"thread_id": thread_id})
        for name in ("thread", "rename_thread", "delete_thread")
    }


def start_active_run(thread: Thread) -> Run:
    now = timezone.now()
    return Run.objects.create(
        thread=thread,
        assistant=thread.current_assistant,
        status=Run.Status.IN_PROGRESS,
        started_at=now,
        heartbeat_at=now,
    )


def flash_texts(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- logging in and out ---------------------------------------------------------------------


def test_the_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content and b'name="password"' in response.content


def test_logging_in_leads_to_the_thread_list(client, user):
    response = client.post(reverse("login"), {"username": "ada", "password": "pw-ada-123"})
    assert response.status_code == 302 and response.url == "/"
    assert client.get(reverse("threads")).status_code == 200


def test_a_wrong_password_shows_a_clear_error(client, user):
    response = client.post(reverse("login"), {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert b'role="alert"' in response.content


def test_logging_out_is_a_post(ada):
    assert ada.get(reverse("logout")).status_code == 405
    response = ada.post(reverse("logout"))
    assert response.status_code == 302 and response.url == reverse("login")
    assert ada.get(reverse("threads")).status_code == 302


def test_every_page_sends_anonymous_users_to_login(client, thread):
    login = reverse("login")
    pages = [("get", reverse("threads")), ("post", reverse("new_thread"))]
    pages += [
        ("get" if name == "thread" else "post", url) for name, url in thread_urls(thread.pk).items()
    ]
    for method, url in pages:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response.url.startswith(f"{login}?next="), url
    assert Thread.objects.filter(pk=thread.pk, title="Ada's chat").exists()


def test_owned_threads_is_empty_for_anonymous_users(thread):
    assert not owned_threads(AnonymousUser()).exists()
    assert not owned_threads(None).exists()
    assert list(owned_threads(thread.owner)) == [thread]


# --- the thread list ----------------------------------------------------------------------


def test_the_list_shows_only_the_users_own_threads(ada, thread, bobs_thread):
    response = ada.get(reverse("threads"))
    assert response.status_code == 200
    assert "Ada&#x27;s chat" in response.content.decode()
    assert b"Bob" not in response.content
    assert str(bobs_thread.pk).encode() not in response.content


def test_the_list_puts_the_latest_activity_first(ada, site_editor, user):
    now = timezone.now()
    for title, age in [("Older chat", 3), ("Newest chat", 1), ("Oldest chat", 9)]:
        started = services.start_thread("welcome", user=user, title=title)
        Thread.objects.filter(pk=started.pk).update(updated_at=now - timedelta(hours=age))
    html = ada.get(reverse("threads")).content.decode()
    positions = [html.index(title) for title in ("Newest chat", "Older chat", "Oldest chat")]
    assert positions == sorted(positions)
    assert "3\xa0hours ago" in html  # relative last activity


def test_the_list_shows_each_threads_assistant_and_a_default_title(ada, site_editor, user):
    services.start_thread("page-editor", user=user)
    html = ada.get(reverse("threads")).content.decode()
    assert "New chat" in html and "Page editor" in html


def test_an_empty_list_says_how_to_start(ada, site_editor):
    html = ada.get(reverse("threads")).content.decode()
    assert "No chats yet — start one with an assistant below" in html
    assert 'value="welcome"' in html  # the entry assistant is offered
    assert 'value="page-editor"' not in html  # not an entry assistant


# --- starting a thread --------------------------------------------------------------------


def test_a_new_chat_with_an_entry_assistant_opens_it(ada, site_editor, user):
    response = ada.post(reverse("new_thread"), {"assistant": "welcome"})
    created = Thread.objects.get()
    assert created.owner == user and created.current_assistant.slug == "welcome"
    assert response.status_code == 302
    assert response.url == reverse("thread", kwargs={"thread_id": created.pk})


@pytest.mark.parametrize("slug", ["page-editor", "no-such-assistant", ""])
def test_a_new_chat_needs_an_entry_assistant(ada, site_editor, slug):
    response = ada.post(reverse("new_thread"), {"assistant": slug}, follow=True)
    assert not Thread.objects.exists()
    assert response.redirect_chain == [(reverse("threads"), 302)]
    assert flash_texts(response) == ["Choose one of the assistants below to start a chat."]


# --- renaming -----------------------------------------------------------------------------


def test_renaming_a_thread(ada, thread):
    updated_at = thread.updated_at
    response = ada.post(thread_urls(thread.pk)["rename_thread"], {"title": "  Spring plans  "})
    assert response.status_code == 302 and response.url == reverse("threads")
    thread.refresh_from_db()
    assert thread.title == "Spring plans"
    assert thread.updated_at == updated_at  # a new name is not new activity


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_a_title_must_have_1_to_200_characters(ada, thread, title):
    response = ada.post(thread_urls(thread.pk)["rename_thread"], {"title": title}, follow=True)
    thread.refresh_from_db()
    assert thread.title == "Ada's chat"
    [message] = flash_texts(response)
    assert "at least one character" in message or "too long (201 characters" in message


def test_a_title_of_200_characters_is_accepted(ada, thread):
    ada.post(thread_urls(thread.pk)["rename_thread"], {"title": "x" * 200})
    thread.refresh_from_db()
    assert thread.title == "x" * 200


def test_renaming_returns_to_a_same_site_next_page(ada, thread):
    page = thread_urls(thread.pk)["thread"]
    response = ada.post(thread_urls(thread.pk)["rename_thread"], {"title": "A", "next": page})
    assert response.url == page


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]
)
def test_renaming_ignores_an_off_site_next(ada, thread, next_url):
    response = ada.post(thread_urls(thread.pk)["rename_thread"], {"title": "A", "next": next_url})
    assert response.status_code == 302 and response.url == reverse("threads")


# --- deleting -----------------------------------------------------------------------------


def test_deleting_a_thread_removes_its_messages(ada, thread):
    Message.objects.create(thread=thread, role=Message.Role.USER, content="hello")
    response = ada.post(thread_urls(thread.pk)["delete_thread"], follow=True)
    assert response.redirect_chain == [(reverse("threads"), 302)]
    assert not Thread.objects.filter(pk=thread.pk).exists()
    assert not Message.objects.exists()
    assert flash_texts(response) == ["Chat deleted."]


def test_deleting_is_refused_while_a_run_is_active(ada, thread):
    start_active_run(thread)
    response = ada.post(thread_urls(thread.pk)["delete_thread"], follow=True)
    assert Thread.objects.filter(pk=thread.pk).exists()
    [message] = flash_texts(response)
    assert "stop it before deleting" in message


def test_a_dead_run_does_not_block_deleting(ada, thread, settings):
    run = start_active_run(thread)
    long_ago = timezone.now() - timedelta(seconds=settings.CHATAPP_RUN_EXPIRY + 60)
    Run.objects.filter(pk=run.pk).update(created_at=long_ago, heartbeat_at=long_ago)
    ada.post(thread_urls(thread.pk)["delete_thread"])
    assert not Thread.objects.filter(pk=thread.pk).exists()


# --- another user's thread ------------------------------------------------------------------


def test_another_users_thread_looks_exactly_like_a_missing_one(ada, bobs_thread):
    theirs, missing = thread_urls(bobs_thread.pk), thread_urls(uuid.uuid4())
    for name in ("thread", "rename_thread", "delete_thread"):
        send = ada.get if name == "thread" else ada.post
        data = {"title": "mine now"} if name == "rename_thread" else {}
        foreign, absent = send(theirs[name], data), send(missing[name], data)
        assert foreign.status_code == absent.status_code == 404, name
        assert foreign.content == absent.content, name
        assert foreign.headers.get("Content-Type") == absent.headers.get("Content-Type")
    bobs_thread.refresh_from_db()
    assert bobs_thread.title == "Bob's secret plans"


# --- methods ------------------------------------------------------------------------------


def test_state_changing_views_refuse_get(ada, thread):
    urls = thread_urls(thread.pk)
    for url in (reverse("new_thread"), urls["rename_thread"], urls["delete_thread"]):
        assert ada.get(url).status_code == 405, url
    assert Thread.objects.filter(pk=thread.pk, title="Ada's chat").exists()


def test_state_changing_views_need_the_csrf_token(user, thread):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    urls = thread_urls(thread.pk)
    assert strict.post(urls["rename_thread"], {"title": "forged"}).status_code == 403
    assert strict.post(urls["delete_thread"]).status_code == 403
    assert strict.post(reverse("new_thread"), {"assistant": "welcome"}).status_code == 403
    assert Thread.objects.get().title == "Ada's chat"


# --- the thread page ----------------------------------------------------------------------


def test_the_thread_page_shows_the_thread(ada, thread):
    response = ada.get(thread_urls(thread.pk)["thread"])
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ada&#x27;s chat" in html and "Welcome" in html
    assert f"/ws/threads/{thread.pk}/" in html


def test_the_composer_takes_as_many_characters_as_the_setting_allows(ada, thread, settings):
    settings.CHATAPP_MAX_MESSAGE_CHARS = 12_345
    html = ada.get(thread_urls(thread.pk)["thread"]).content.decode()
    assert 'maxlength="12345"' in html


@pytest.mark.django_db(transaction=True)  # say() reaches the database from another thread
def test_a_whole_conversation_renders_without_inline_code(client, site_editor, user):
    from chatapp.runs import say

    client.force_login(user)
    thread = services.start_thread("welcome", user=user)
    assert say(thread, "I want to edit the about page").status == "completed"
    html = client.get(thread_urls(thread.pk)["thread"]).content.decode()
    assert "handoff-banner" in html and "tool-step" in html and "page-preview" in html
    assert inline_code(html) == []


# --- browser-side invariants --------------------------------------------------------------


def pages_of(thread: Thread) -> dict[str, str]:
    return {
        "login": reverse("login"),
        "threads": reverse("threads"),
        "thread": thread_urls(thread.pk)["thread"],
        "not found": thread_urls(uuid.uuid4())["thread"],
    }


def test_every_page_has_a_strict_content_security_policy(ada, thread):
    for name, url in pages_of(thread).items():
        policy = ada.get(url).headers.get("Content-Security-Policy", "")
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives.get("script-src") == "'self'", name
        assert directives.get("style-src") == "'self'", name
        assert directives.get("object-src") == "'none'", name
        assert directives.get("frame-ancestors") == "'none'", name
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, name


def test_no_page_has_inline_script_or_style(ada, thread):
    ada.post(thread_urls(thread.pk)["rename_thread"], {"title": "Renamed"})  # a flash message
    for name, url in pages_of(thread).items():
        assert inline_code(ada.get(url).content.decode()) == [], name
    ada.logout()
    assert inline_code(ada.get(reverse("login")).content.decode()) == []


def test_a_title_written_by_the_user_is_escaped(ada, thread):
    ada.post(thread_urls(thread.pk)["rename_thread"], {"title": "<script>alert(1)</script>"})
    for url in (reverse("threads"), thread_urls(thread.pk)["thread"]):
        html = ada.get(url).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert "<script>alert" not in html, url


def test_pages_set_the_htmx_config_that_keeps_the_csp_intact(ada, thread):
    html = ada.get(reverse("threads")).content.decode()
    assert '"includeIndicatorStyles": false' in html and '"allowEval": false' in html
    assert "/static/vendor/htmx-2.0." in html and "/static/vendor/htmx-ext-ws-2.0." in html


# --- the demo user ------------------------------------------------------------------------


def test_ensure_demo_user_refuses_without_debug(settings, django_user_model):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("ensure_demo_user", stdout=io.StringIO())
    assert not django_user_model.objects.filter(username="demo").exists()


def test_ensure_demo_user_is_idempotent(settings, django_user_model, client):
    settings.DEBUG = True
    for _ in range(2):
        out = io.StringIO()
        call_command("ensure_demo_user", stdout=out)
        assert "Log in at http://127.0.0.1:8000/ as demo / demo" in out.getvalue()
    assert django_user_model.objects.filter(username="demo").count() == 1
    response = client.post(reverse("login"), {"username": "demo", "password": "demo"})
    assert response.status_code == 302 and response.url == "/"
