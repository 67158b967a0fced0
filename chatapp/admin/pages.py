"""Read-only admin pages about assistants: the preview of what a model receives, and the
workflow diagram of every assistant and rule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe

from assistants_registry.registry import registry
from chatapp.admin.diagram import workflow_svg
from chatapp.models import Assistant, ConsultRule, HandoffRule
from chatapp.runs import build_preview

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


def viewable_assistant(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> Assistant:
    assistant = model_admin.get_object(request, unquote(object_id))
    if assistant is None:
        raise Http404("No such assistant.")
    if not model_admin.has_view_permission(request, assistant):
        raise PermissionDenied
    return assistant


def page_context(model_admin: ModelAdmin, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": Assistant._meta,
        "app_label": Assistant._meta.app_label,
        **extra,
    }


def preview(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    assistant = viewable_assistant(model_admin, request, object_id)
    context = page_context(
        model_admin,
        request,
        title=f"What the model receives: {assistant.name}",
        original=assistant,
        preview=build_preview(assistant, registry),
    )
    return TemplateResponse(request, "admin/chatapp/assistant/preview.html", context)


def diagram(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    assistants = list(Assistant.objects.order_by("name", "slug"))
    rules = list(HandoffRule.objects.order_by("source__name", "order", "id"))
    consults = list(ConsultRule.objects.order_by("source__name", "order", "id"))
    svg = workflow_svg(
        assistants,
        rules,
        lambda a: reverse("admin:chatapp_assistant_change", args=[a.pk]),
        consults,
    )
    context = page_context(
        model_admin,
        request,
        title="Workflow",
        # Safe: workflow_svg escapes every piece of text it writes.
        svg=mark_safe(svg),
        assistant_count=len(assistants),
        rule_count=len(rules),
        consult_count=len(consults),
    )
    return TemplateResponse(request, "admin/chatapp/assistant/diagram.html", context)
