"""The user's chats beside a conversation: newest first, a page at a time, grouped Today and
Earlier, and found by title and by what was said (PostgreSQL's full-text search there; a
plain `icontains` on SQLite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from chatapp.models import Message, Thread
from chatapp.web.access import owned_threads

PAGE_SIZE = 25
MAX_QUERY = 200
TODAY, EARLIER = "Today", "Earlier"


@dataclass
class Group:
    label: str
    threads: list[Thread] = field(default_factory=list)
    continued: bool = False  # goes on from the previous page: no heading again


@dataclass
class ChatList:
    groups: list[Group]
    query: str = ""
    next_page: int | None = None  # "Show more" loads this page
    last_group: str = ""  # the label of the last group shown, so the next page goes on

    @property
    def empty(self) -> bool:
        return not self.groups


def said(query: str) -> QuerySet[Message]:
    """Messages of people and assistants (not replaced) that match the query."""
    spoken = Message.objects.filter(role__in=(Message.Role.USER, Message.Role.ASSISTANT)).exclude(
        status=Message.Status.REPLACED
    )
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchVector

        return spoken.annotate(document=SearchVector("content", config="simple")).filter(
            document=SearchQuery(query, config="simple", search_type="websearch")
        )
    return spoken.filter(content__icontains=query)


def find_chats(user: Any, query: str = "") -> QuerySet[Thread]:
    """The user's chats (consultations are shown inside theirs), newest first; with a query,
    those whose title or messages match it."""
    chats = owned_threads(user).filter(parent__isnull=True)
    query = " ".join(query.split())[:MAX_QUERY]
    if query:
        chats = chats.filter(Q(title__icontains=query) | Q(pk__in=said(query).values("thread_id")))
    return chats.select_related("current_assistant").order_by("-updated_at", "-pk")


def chat_list(user: Any, query: str = "", page: int = 1, after: str = "") -> ChatList:
    """One page of the user's chats; `after`: the group the previous page ended in."""
    page = max(page, 1)
    start = (page - 1) * PAGE_SIZE
    found = list(find_chats(user, query)[start : start + PAGE_SIZE + 1])
    more, shown = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
    today = timezone.localdate()
    groups: list[Group] = []
    for thread in shown:
        label = TODAY if timezone.localdate(thread.updated_at) == today else EARLIER
        if groups and groups[-1].label == label:
            groups[-1].threads.append(thread)
        else:
            groups.append(Group(label, [thread], continued=not groups and label == after))
    last = groups[-1].label if groups else after
    return ChatList(groups, query, page + 1 if more else None, last)
