"""The Thread admin: staff may fix a thread's owner, current assistant and metadata; its
messages are shown read-only (they are the record of what was said)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from chatapp.admin.assistants import ADMIN_CSS
from chatapp.admin.forms import ThreadForm
from chatapp.models import Message, Thread


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "thread"
    fields = ["role", "assistant", "short_content", "tool_call_list", "status", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("assistant").order_by("id")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return Truncator(obj.content).chars(300)

    @admin.display(description="tool calls")
    def tool_call_list(self, obj: Message) -> str:
        calls = [f"{call.get('name')}({call.get('arguments', '')})" for call in obj.tool_calls]
        return Truncator("; ".join(calls)).chars(200) or "—"


class ConsultationFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("conversation", "conversations"), ("consultation", "consultations")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Thread]) -> QuerySet[Thread]:
        if self.value() == "conversation":
            return queryset.filter(parent__isnull=True)
        if self.value() == "consultation":
            return queryset.filter(parent__isnull=False)
        return queryset


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    form = ThreadForm
    inlines = [MessageInline]
    list_display = ["id", "owner", "title", "current_assistant", "updated_at"]
    list_select_related = ["owner", "current_assistant"]
    list_filter = ["current_assistant", ConsultationFilter]
    search_fields = ["title", "owner__username"]
    raw_id_fields = ["owner"]
    fields = [
        "id",
        "owner",
        "title",
        "current_assistant",
        "metadata",
        "parent",
        "parent_step",
        "created_at",
        "updated_at",
    ]
    # A consultation's thread belongs to the step that asked: not something to re-link.
    readonly_fields = ["id", "parent", "parent_step", "created_at", "updated_at"]

    class Media:
        css = {"all": [ADMIN_CSS]}
