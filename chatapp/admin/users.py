"""Users as staff see them: Django's user admin, with what each user is using of their
limits (answers being written now, tokens today) beside the limits themselves."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from chatapp import services

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (*DjangoUserAdmin.list_display, "answers_now", "tokens_today")
    readonly_fields = ("usage",)
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Usage and limits", {"fields": ("usage",)}))

    @admin.display(description="answers now")
    def answers_now(self, user: Any) -> str:
        answering = services.answers_being_written(user.pk)
        return f"{answering} of {settings.CHATAPP_MAX_RUNS_PER_USER}"

    @admin.display(description="tokens today")
    def tokens_today(self, user: Any) -> str:
        used, budget = services.tokens_today(user.pk), settings.CHATAPP_DAILY_TOKENS_PER_USER
        return f"{used:,} of {budget:,}" if budget else f"{used:,} (no daily limit)"

    @admin.display(description="usage and limits")
    def usage(self, user: Any) -> str:
        if user.pk is None:
            return "—"
        return (
            f"Answers being written: {self.answers_now(user)}. "
            f"Tokens today (UTC): {self.tokens_today(user)}. "
            f"At most {settings.CHATAPP_MAX_MESSAGES_PER_MINUTE} messages a minute and "
            f"{settings.CHATAPP_MAX_SOCKETS_PER_USER} open pages per server process."
        )
