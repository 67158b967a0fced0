"""The domain: assistants and the rules that move a thread between them, threads and their
messages, and runs with their steps (the trace).

Only services.py and runs/store.py write threads, messages, runs and steps.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from assistants_registry.parameters import parameters_model

SLUG_TO_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


class Assistant(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(
        blank=True, help_text="What this assistant is for; shown to other assistants."
    )
    instructions = models.TextField(
        blank=True,
        help_text="A Django template, rendered with thread, metadata, user and assistant.",
    )
    provider = models.CharField(
        max_length=40, blank=True, help_text="Empty: the default provider of this installation."
    )
    model = models.CharField(
        max_length=100, blank=True, help_text="Empty: the provider's default model."
    )
    temperature = models.FloatField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True, help_text="Names from the tool registry.")
    ask_before = models.JSONField(
        default=list,
        blank=True,
        help_text="Of its tools, those that wait for the user's approval before they run "
        "(besides tools that always ask).",
    )
    max_steps = models.PositiveSmallIntegerField(
        default=8, help_text="Model calls this assistant may make in one run."
    )
    is_entry = models.BooleanField(default=False, help_text="Offered when starting a new chat.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.ask_before, list) or not all(
            isinstance(name, str) for name in self.ask_before
        ):
            raise ValidationError({"ask_before": "A list of tool names."})
        if strangers := [name for name in self.ask_before if name not in (self.tools or [])]:
            raise ValidationError(
                {"ask_before": f"Not among its tools: {', '.join(strangers)}. Tick them first."}
            )


class HandoffRule(models.Model):
    class Trigger(models.TextChoices):
        TOOL = "tool", "the model calls the handoff tool"
        AFTER_TOOL = "after_tool", "after the source's tool succeeds"

    class History(models.TextChoices):
        FULL = "full", "the whole thread"
        LAST_N = "last_n", "the last N messages"
        NONE = "none", "nothing before the handoff"

    source = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="handoff_rules")
    target = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="incoming_rules")
    tool_name = models.CharField(
        max_length=64, blank=True, help_text="Empty: transfer_to_<target slug>."
    )
    description = models.TextField(blank=True, help_text="Empty: the target's description.")
    trigger = models.CharField(max_length=10, choices=Trigger, default=Trigger.TOOL)
    after_tool = models.CharField(
        max_length=64, blank=True, help_text="With the after_tool trigger: the source's tool."
    )
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text="A small JSON schema (object of string/integer/number/boolean/enum "
        "properties); validated arguments are merged into the thread metadata.",
    )
    required_metadata = models.JSONField(
        default=list, blank=True, help_text="Metadata keys that must be set before handing off."
    )
    history = models.CharField(max_length=6, choices=History, default=History.FULL)
    history_last_n = models.PositiveSmallIntegerField(default=6)
    extra_instructions = models.TextField(
        blank=True, help_text="A template appended to the target's instructions after the handoff."
    )
    respond_immediately = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["source", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "tool_name"], name="unique_handoff_tool_name")
        ]

    def __str__(self) -> str:
        return f"{self.source} → {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.tool_name:
            self.tool_name = self.default_tool_name()
        super().save(*args, **kwargs)

    def default_tool_name(self) -> str:
        return "transfer_to_" + SLUG_TO_IDENTIFIER.sub("_", self.target.slug.lower()).strip("_")

    def clean(self) -> None:
        if self.trigger == self.Trigger.AFTER_TOOL and not self.after_tool:
            raise ValidationError({"after_tool": "Name the tool after which the thread moves on."})
        try:
            parameters_model(self.parameters)
        except ValueError as exc:
            raise ValidationError({"parameters": str(exc)}) from exc
        if not isinstance(self.required_metadata, list) or not all(
            isinstance(key, str) for key in self.required_metadata
        ):
            raise ValidationError({"required_metadata": "A list of metadata keys."})
        if self.source_id and self.target_id:
            check_tool_name_free(self.source, self.tool_name or self.default_tool_name(), self)


def check_tool_name_free(source: Assistant, name: str, rule: models.Model) -> None:
    """One name, one tool: a handoff and a consultation of one assistant must not share a
    name (the model would be offered only one of them). Clashes with the assistant's own
    tools are checked where the tools are chosen: the admin form and sync."""
    taken = False
    for model in (HandoffRule, ConsultRule):
        others = model.objects.filter(source=source, tool_name=name)
        if isinstance(rule, model) and rule.pk:
            others = others.exclude(pk=rule.pk)
        taken = taken or others.exists()
    if taken:
        raise ValidationError({"tool_name": f"{source.name} already has a tool named {name!r}."})


class ConsultRule(models.Model):
    """Lets `source` consult `specialist` through a tool `ask_<slug>`: the specialist answers on
    a child thread and its answer comes back as the tool result; the thread does not move."""

    source = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="consult_rules")
    specialist = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="consulted_by")
    tool_name = models.CharField(max_length=64, blank=True, help_text="Empty: ask_<slug>.")
    description = models.TextField(blank=True, help_text="Empty: the specialist's description.")
    enabled = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["source", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "tool_name"], name="unique_consult_tool_name")
        ]

    def __str__(self) -> str:
        return f"{self.source} asks {self.specialist}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.tool_name:
            self.tool_name = self.default_tool_name()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.source_id and self.specialist_id:
            if self.source_id == self.specialist_id:
                raise ValidationError({"specialist": "An assistant cannot consult itself."})
            check_tool_name_free(self.source, self.tool_name or self.default_tool_name(), self)

    def default_tool_name(self) -> str:
        return "ask_" + SLUG_TO_IDENTIFIER.sub("_", self.specialist.slug.lower()).strip("_")


class AssistantVersion(models.Model):
    """A snapshot of an assistant (its settings and its handoff rules) as it was when it
    changed. Runs point at the version they used; staff can compare and restore versions."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assistant", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["assistant", "number"], name="unique_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.assistant} v{self.number}"


class Thread(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads"
    )
    title = models.CharField(max_length=200, blank=True)
    current_assistant = models.ForeignKey(
        Assistant, on_delete=models.PROTECT, related_name="threads"
    )
    metadata = models.JSONField(default=dict, blank=True)
    # A consultation's thread hangs off the step of the parent run that asked for it.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    parent_step = models.ForeignKey(
        "RunStep", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Thread {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"
        EVENT = "event"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        INCOMPLETE = "incomplete"
        # Retried or edited away: kept for the trace, out of the page and the history.
        REPLACED = "replaced"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role)
    assistant = models.ForeignKey(
        Assistant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.TextField(blank=True)
    # [{"id", "name", "arguments"}]: our own format, not a vendor's.
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True)
    # Event payloads (a handoff: source, target, metadata, history policy, extra instructions)
    # and tool results (name, is_error).
    data = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey(
        "Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # NULL, not "": messages without a client id must not collide in the unique constraint.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=10, choices=Status, default=Status.COMPLETE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "client_id"], name="unique_client_id_per_thread"
            )
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"  # stopped by a person
        INTERRUPTED = "interrupted"  # its server stopped (SIGTERM, SIGINT) while it ran
        EXPIRED = "expired"  # its process died without a word: noticed by the heartbeat
        # Paused until the user approves or rejects a tool call: no process holds it.
        AWAITING_APPROVAL = "awaiting_approval"

    WORKING = (Status.QUEUED, Status.IN_PROGRESS)  # a process runs it, or is about to
    ACTIVE = (*WORKING, Status.AWAITING_APPROVAL)  # the thread is busy: no new message

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="runs")
    assistant = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="runs")
    assistant_version = models.ForeignKey(
        AssistantVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    status = models.CharField(max_length=20, choices=Status, default=Status.QUEUED)
    error = models.TextField(blank=True, help_text="Shown to the user: plain words.")
    # For staff: what happened, with the model server's address (credentials removed).
    error_detail = models.TextField(blank=True)
    usage = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The thread lock: the database itself refuses a second active run.
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(status__in=["queued", "in_progress", "awaiting_approval"]),
                name="one_active_run_per_thread",
            )
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"


class RunStep(models.Model):
    class Kind(models.TextChoices):
        MESSAGE = "message"
        TOOL_CALL = "tool_call"
        HANDOFF = "handoff"
        CONSULT = "consult"
        APPROVAL = "approval"  # a tool call put to the user, and what they decided

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind)
    assistant = models.ForeignKey(Assistant, null=True, on_delete=models.SET_NULL, related_name="+")
    data = models.JSONField(default=dict, blank=True)
    # Not auto_now_add: a message step is recorded when the message ends, but began with it.
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="unique_step_index")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.index}"


def attachment_path(attachment: Attachment, filename: str) -> str:
    """Where a file is stored: named by its random id, never by what the user called it."""
    return f"attachments/{attachment.thread_id}/{attachment.pk.hex}"


class Attachment(models.Model):
    """A file of a thread: attached by its user to a message (or waiting to be sent with the
    next one), or made by a tool and attached to the tool's result. Its id is random, and only
    the thread's owner (and staff with the view permission) can download it."""

    class Source(models.TextChoices):
        USER = "user", "attached by the user"
        TOOL = "tool", "made by a tool"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="attachments")
    # The user's message it was sent with, or the tool result that made it; NULL: not sent yet.
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    name = models.CharField(max_length=200, help_text="Unique in its thread: tools use it.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    file = models.FileField(upload_to=attachment_path, max_length=300)
    source = models.CharField(max_length=4, choices=Source, default=Source.USER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "name"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "name"], name="unique_file_name_per_thread")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        """Shown inline: raster images only (an SVG can carry script)."""
        return self.content_type in INLINE_IMAGES


INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
