"""The Run admin: a trace of every run. Read-only (only the engine writes runs and steps),
but deletable; the change view shows the steps as a timeline."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.utils.text import Truncator

from chatapp.admin.assistants import ADMIN_CSS
from chatapp.admin.timeline import duration, timeline
from chatapp.models import Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "thread",
        "assistant",
        "status",
        "started_at",
        "finished_at",
        "run_duration",
        "tokens",
        "short_error",
    ]
    list_select_related = ["thread", "assistant"]
    list_filter = ["status", "assistant"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "thread",
                    "assistant",
                    "assistant_version",
                    "status",
                    "error",
                    "error_detail",
                ]
            },
        ),
        (
            "Timing and usage",
            {
                "fields": [
                    "created_at",
                    "started_at",
                    "finished_at",
                    "run_duration",
                    "heartbeat_at",
                    "tokens",
                    "cancel_requested",
                ]
            },
        ),
    ]
    readonly_fields = ["id", "created_at", "run_duration", "tokens"]

    class Media:
        css = {"all": [ADMIN_CSS]}

    @admin.display(description="duration")
    def run_duration(self, obj: Run) -> str:
        return duration(obj.started_at, obj.finished_at) or "—"

    @admin.display(description="tokens")
    def tokens(self, obj: Run) -> str:
        usage = obj.usage or {}
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        if not (prompt or completion):
            return "—"
        return f"{prompt + completion} ({prompt} in, {completion} out)"

    @admin.display(description="error")
    def short_error(self, obj: Run) -> str:
        return Truncator(obj.error).chars(80)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the change view becomes a read-only view; deleting stays possible

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, unquote(object_id))
        # The timeline only for those who may see the run; the default view refuses the rest.
        steps = timeline(run) if run and self.has_view_permission(request, run) else []
        extra = {**(extra_context or {}), "timeline": steps}
        return super().change_view(request, object_id, form_url, extra)
