"""Assistant versions in the admin: the list with a diff against the previous version, and
Restore. Versions themselves are registered read-only: they are a record, not a setting."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from chatapp import versions as versioning
from chatapp.admin.pages import page_context, viewable_assistant
from chatapp.models import AssistantVersion

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


@dataclass
class DiffLine:
    text: str
    kind: str  # "add", "remove", "hunk", "file" or "" (context)


@dataclass
class VersionRow:
    version: AssistantVersion
    runs: int
    diff: list[DiffLine]
    is_latest: bool


def classify(line: str) -> DiffLine:
    if line.startswith(("+++", "---")):
        return DiffLine(line, "file")
    if line.startswith("@@"):
        return DiffLine(line, "hunk")
    if line.startswith("+"):
        return DiffLine(line, "add")
    if line.startswith("-"):
        return DiffLine(line, "remove")
    return DiffLine(line, "")


def versions(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    assistant = viewable_assistant(model_admin, request, object_id)
    ordered = list(
        AssistantVersion.objects.filter(assistant=assistant)
        .annotate(run_count=Count("runs"))
        .order_by("number")
    )
    rows = [
        VersionRow(
            version,
            version.run_count,  # type: ignore[attr-defined]
            [classify(line) for line in versioning.diff(previous, version)],
            is_latest=version is ordered[-1],
        )
        for previous, version in zip([None, *ordered[:-1]], ordered, strict=True)
    ]
    rows.reverse()  # newest first
    context = page_context(
        model_admin,
        request,
        title=f"Versions of {assistant.name}",
        original=assistant,
        rows=rows,
        can_restore=model_admin.has_change_permission(request, assistant),
    )
    return TemplateResponse(request, "admin/chatapp/assistant/versions.html", context)


def restore(
    model_admin: ModelAdmin, request: HttpRequest, object_id: str, number: int
) -> HttpResponse:
    if request.method != "POST":  # a change: never on a GET a link or a crawler could make
        return HttpResponseNotAllowed(["POST"])
    assistant = viewable_assistant(model_admin, request, object_id)
    if not model_admin.has_change_permission(request, assistant):
        raise PermissionDenied
    version = get_object_or_404(AssistantVersion, assistant=assistant, number=number)
    try:
        recorded = versioning.restore(version)
    except versioning.RestoreError as exc:
        messages.error(request, f"Could not restore v{number}: {exc}")
    else:
        if recorded is None:
            messages.info(request, f"{assistant.name} is already as it was in v{number}.")
        else:
            model_admin.log_change(request, assistant, f"Restored v{number} as v{recorded.number}.")
            messages.success(
                request, f"Restored v{number} of {assistant.name}; saved as v{recorded.number}."
            )
    return HttpResponseRedirect(reverse("admin:chatapp_assistant_versions", args=[assistant.pk]))


@admin.register(AssistantVersion)
class AssistantVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are made by saving an assistant and undone by restoring one."""

    list_display = ["__str__", "assistant", "number", "created_at", "run_count"]
    list_filter = ["assistant"]
    list_select_related = ["assistant"]
    fields = ["assistant_link", "number", "created_at", "snapshot_json"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AssistantVersion]:
        return super().get_queryset(request).annotate(run_count=Count("runs"))

    @admin.display(description="runs", ordering="run_count")
    def run_count(self, obj: AssistantVersion) -> int:
        return obj.run_count  # type: ignore[attr-defined]

    @admin.display(description="assistant")
    def assistant_link(self, obj: AssistantVersion) -> str:
        url = reverse("admin:chatapp_assistant_versions", args=[obj.assistant_id])
        return format_html('{} (<a href="{}">all versions, diff, restore</a>)', obj.assistant, url)

    @admin.display(description="snapshot")
    def snapshot_json(self, obj: AssistantVersion) -> str:
        text = json.dumps(obj.snapshot, indent=2, ensure_ascii=False)
        return format_html('<pre class="chatapp-json">{}</pre>', text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
