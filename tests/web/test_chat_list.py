"""The list of the user's chats beside a conversation: newest first, grouped Today and
Earlier, a page at a time, searched by title and by what was said — only the user's own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from chatapp import services
from chatapp.models import Message, Thread
from chatapp.web.chats import PAGE_SIZE, chat_list, find_chats
from tests.factories import assistant

pytestmark = pytest.mark.django_db


@pytest.fixture
def helper():
    return assistant("helper", name="Helper")


def chat(user, helper, title, *said, days_ago=0):
    thread = services.start_thread(helper, user=user, title=title)
    for text in said:
        Message.objects.create(thread=thread, role="user", content=text)
    when = timezone.now() - timedelta(days=days_ago)
    Thread.objects.filter(pk=thread.pk).update(updated_at=when)
    return thread


def test_newest_first_grouped_today_and_earlier(user, helper):
    old = chat(user, helper, "Old", days_ago=3)
    new = chat(user, helper, "New")
    listed = chat_list(user)
    assert [(g.label, [t.pk for t in g.threads]) for g in listed.groups] == [
        ("Today", [new.pk]),
        ("Earlier", [old.pk]),
    ]


def test_search_finds_titles_and_what_was_said_and_nothing_of_others(user, other_user, helper):
    bread = chat(user, helper, "Bakery", "Ideas for sourdough bread")
    taxes = chat(user, helper, "Taxes", "forms due in April")
    chat(other_user, helper, "Bread of someone else", "sourdough bread")
    assert list(find_chats(user, "bread")) == [bread]  # in what was said
    assert list(find_chats(user, "taxes")) == [taxes]  # in the title
    assert list(find_chats(user, "nothing like this")) == []
    assert set(find_chats(user, "")) == {bread, taxes}


def test_replaced_messages_and_consultations_are_not_listed_or_searched(user, helper):
    kept = chat(user, helper, "Kept")
    Message.objects.create(thread=kept, role="user", content="zebra", status="replaced")
    child = services.start_thread(helper, user=user, title="zebra consultation")
    Thread.objects.filter(pk=child.pk).update(parent=kept)
    assert list(find_chats(user, "zebra")) == []
    assert list(find_chats(user)) == [kept]


def test_search_reads_queries_as_the_database_can(user, helper):
    """PostgreSQL: full-text search with web-search syntax (`-word`, "a phrase"). SQLite: the
    query is a plain substring. Both runs of CI check their own."""
    rye = chat(user, helper, "Loaves", "rye bread with seeds")
    wheat = chat(user, helper, "More loaves", "wheat bread, no seeds")
    if connection.vendor == "postgresql":
        assert set(find_chats(user, "bread -rye")) == {wheat}
        assert set(find_chats(user, '"rye bread"')) == {rye}
        assert set(find_chats(user, "seeds wheat")) == {wheat}  # words in any order
    else:
        assert connection.vendor == "sqlite"  # the only other backend chatapp runs on
        assert set(find_chats(user, "bread -rye")) == set()  # no such text
        assert set(find_chats(user, "rye bread")) == {rye}
        assert set(find_chats(user, "seeds wheat")) == set()


def test_long_lists_come_a_page_at_a_time(client, user, helper):
    for number in range(PAGE_SIZE + 3):
        chat(user, helper, f"Chat {number:02}", days_ago=number // 20)
    first = chat_list(user)
    assert sum(len(g.threads) for g in first.groups) == PAGE_SIZE and first.next_page == 2
    client.force_login(user)
    more = client.get(reverse("chat_list"), {"page": 2, "after": first.last_group})
    html = more.content.decode()
    assert html.count('<li><a class="chat-list__item') == 3
    assert "<h2" not in html  # the Earlier group goes on: no second heading
    assert "Show more chats" not in html


def test_the_thread_page_lists_the_chats_with_this_one_marked(client, user, helper):
    this = chat(user, helper, "This one")
    chat(user, helper, "Another")
    client.force_login(user)
    html = client.get(reverse("thread", args=[this.pk])).content.decode()
    assert 'aria-label="Your chats"' in html and "New chat</a>" in html
    assert f'href="/threads/{this.pk}/" aria-current="page"' in html
    assert html.count('<li><a class="chat-list__item') == 2
    assert "Helper · <time" in html  # the assistant answering each
    assert "{#" not in html and "{%" not in html  # no template text leaks onto the page


def test_the_list_view_searches_and_refuses_bad_input(client, user, other_user, helper):
    mine = chat(user, helper, "Bakery", "sourdough")
    theirs = chat(other_user, helper, "Sourdough too", "sourdough")
    client.force_login(user)
    found = client.get(reverse("chat_list"), {"q": "sourdough", "current": str(mine.pk)})
    html = found.content.decode()
    assert "Bakery" in html and "Sourdough too" not in html
    assert 'aria-current="page"' in html
    empty = client.get(reverse("chat_list"), {"q": "zzz"}).content.decode()
    assert "No chat matches “zzz”." in empty
    # Someone else's chat cannot even be marked as current.
    other = client.get(reverse("chat_list"), {"current": str(theirs.pk)}).content.decode()
    assert "aria-current" not in other
    assert client.get(reverse("chat_list"), {"page": "x"}).status_code == 400
    client.logout()
    assert client.get(reverse("chat_list")).status_code == 302
