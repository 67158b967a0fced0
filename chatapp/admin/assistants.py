"""The Assistant admin: settings, tools as checkboxes, handoff rules inline, and links to the
preview, the versions and the workflow diagram (their views live in sibling modules)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from chatapp.admin import history, pages
from chatapp.admin.forms import (
    AssistantForm,
    ConsultRuleForm,
    ConsultRuleFormSet,
    HandoffRuleForm,
    HandoffRuleFormSet,
)
from chatapp.models import Assistant, AssistantVersion, ConsultRule, HandoffRule
from chatapp.versions import CONSULT_FIELDS

ADMIN_CSS = "chatapp/admin.css"


class HandoffRuleInline(admin.StackedInline):
    model = HandoffRule
    fk_name = "source"
    form = HandoffRuleForm
    formset = HandoffRuleFormSet
    extra = 0
    verbose_name = "handoff rule"
    verbose_name_plural = "handoff rules (from this assistant)"
    fieldsets = [
        (None, {"fields": [("target", "tool_name"), "description", ("trigger", "after_tool")]}),
        ("What moves with the thread", {"fields": ["parameters", "required_metadata"]}),
        (
            "What the target sees",
            {"fields": [("history", "history_last_n"), "extra_instructions"]},
        ),
        (None, {"fields": [("respond_immediately", "enabled", "order")]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[HandoffRule]:
        return super().get_queryset(request).select_related("target")


class ConsultRuleInline(admin.TabularInline):
    model = ConsultRule
    fk_name = "source"
    form = ConsultRuleForm
    formset = ConsultRuleFormSet
    extra = 0
    verbose_name = "consultation"
    verbose_name_plural = "consultations (specialists this assistant may ask; the thread stays)"
    fields = ["specialist", *CONSULT_FIELDS]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsultRule]:
        return super().get_queryset(request).select_related("specialist")


class DefaultableFilter(admin.SimpleListFilter):
    """Filter on a blank-means-default field, calling the blank value "default"."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = (
            Assistant.objects.order_by(self.field).values_list(self.field, flat=True).distinct()
        )
        return [(value or "-", value or "default") for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(**{self.field: "" if value == "-" else value})


class ProviderFilter(DefaultableFilter):
    title = "provider"
    parameter_name = field = "provider"


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    form = AssistantForm
    inlines = [HandoffRuleInline, ConsultRuleInline]
    list_display = [
        "name",
        "slug",
        "model_name",
        "provider_name",
        "tool_list",
        "is_entry",
        "rule_count",
    ]
    list_filter = [ProviderFilter, "is_entry"]
    search_fields = ["name", "slug", "description", "instructions"]
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "is_entry"]}),
        (
            "Instructions",
            {
                "fields": ["instructions"],
                "description": "For example <code>You are editing the page "
                "{{ metadata.page_id }}.</code> Saving renders it for a sample thread and "
                "refuses a template that does not render; Preview shows the result.",
            },
        ),
        ("Tools", {"fields": ["tools", "ask_before"]}),
        ("Model", {"fields": ["provider", "model", "temperature", "max_steps"]}),
        ("Timestamps", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assistant]:
        # One query for the changelist, whatever the number of rules.
        return super().get_queryset(request).annotate(rule_count=Count("handoff_rules"))

    @admin.display(description="model", ordering="model")
    def model_name(self, obj: Assistant) -> str:
        return obj.model or "default"

    @admin.display(description="provider", ordering="provider")
    def provider_name(self, obj: Assistant) -> str:
        return obj.provider or "default"

    @admin.display(description="tools")
    def tool_list(self, obj: Assistant) -> str:
        return ", ".join(obj.tools) or "—"

    @admin.display(description="rules", ordering="rule_count")
    def rule_count(self, obj: Assistant) -> int:
        return obj.rule_count  # type: ignore[attr-defined]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Versions are read-only in the admin, but they belong to their assistant and go
        # with it: no separate permission to delete them is needed.
        perms_needed.discard(AssistantVersion._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        custom = [
            path("diagram/", wrap(self.diagram_view), name="chatapp_assistant_diagram"),
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name="chatapp_assistant_preview",
            ),
            path(
                "<path:object_id>/versions/",
                wrap(self.versions_view),
                name="chatapp_assistant_versions",
            ),
            path(
                "<path:object_id>/versions/<int:number>/restore/",
                wrap(self.restore_view),
                name="chatapp_assistant_restore",
            ),
        ]
        # Before the default patterns: "<path:object_id>/" would swallow them otherwise.
        return custom + super().get_urls()

    def diagram_view(self, request: HttpRequest) -> HttpResponse:
        return pages.diagram(self, request)

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return pages.preview(self, request, object_id)

    def versions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return history.versions(self, request, object_id)

    def restore_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        return history.restore(self, request, object_id, number)
