"""What one run may spend, and `Stop`, which ends a run that reaches a limit.

The limits are read from settings once, when a run starts (`Limits.from_settings()`); the run
loop and its tool steps never read settings as they go. Tests and callers may pass their own.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings

from chatapp.models import Assistant, Run


class Stop(Exception):
    """Ends the run early with a status and a reason the user can read."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Limits:
    max_handoffs: int = 4  # stops assistants passing a thread around forever
    max_consult_depth: int = 2  # 2 lets a specialist consult one more
    tool_timeout: float = 30.0  # seconds, unless a tool sets its own
    flush_interval: float = 1.0  # seconds between saves of a streaming message's text
    heartbeat_interval: float = 5.0  # seconds between "still alive" marks of the run
    model_deadline: float = 600.0  # seconds one model call may take in all
    model_idle: float = 60.0  # seconds one model call may send no data

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            max_handoffs=settings.CHATAPP_MAX_HANDOFFS_PER_RUN,
            max_consult_depth=settings.CHATAPP_MAX_CONSULT_DEPTH,
            tool_timeout=settings.CHATAPP_TOOL_TIMEOUT,
            flush_interval=settings.CHATAPP_FLUSH_INTERVAL,
            # Six beats per expiry period: a few late beats never get a live run expired.
            heartbeat_interval=settings.CHATAPP_RUN_EXPIRY / 6,
            model_deadline=settings.CHATAPP_MODEL_DEADLINE,
            model_idle=settings.CHATAPP_MODEL_IDLE,
        )


@dataclass
class Budget:
    """Model calls left for a consulting run and everything it consults, together."""

    remaining: int
    used: int = field(default=0)

    def spend(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        self.used += 1
        return True


@dataclass
class StepCounter:
    """The model calls of one run: each assistant within its own `max_steps`, and a consulted
    run within the budget it shares with the run that consulted it."""

    shared: Budget | None = None
    by_assistant: Counter[int] = field(default_factory=Counter)

    def spend(self, assistant: Assistant) -> None:
        if self.by_assistant[assistant.pk] >= assistant.max_steps:
            raise Stop(
                Run.Status.FAILED,
                f"{assistant.name} reached its limit of {assistant.max_steps} steps in one run.",
            )
        if self.shared is not None and not self.shared.spend():
            raise Stop(Run.Status.FAILED, "The step budget of the consulting run is used up.")
        self.by_assistant[assistant.pk] += 1

    def for_consultation(self, assistant: Assistant) -> Budget:
        """What a specialist consulted by `assistant` may spend: the shared budget when this
        run is itself a consultation, else what is left of the assistant's own steps."""
        if self.shared is not None:
            return self.shared
        return Budget(assistant.max_steps - self.by_assistant[assistant.pk])

    def settle(self, assistant: Assistant, budget: Budget) -> None:
        """Count a consultation's model calls against the assistant that asked."""
        if budget is not self.shared:
            self.by_assistant[assistant.pk] += budget.used


class ModelClock:
    """The time limits of one model call: when to save the partial text, and when the call
    has gone on too long in all or too long without data."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.started = self.heard_at = time.monotonic()
        self.next_flush = self.started + limits.flush_interval

    def wait(self) -> float:
        """How long to wait for the next piece before something is due."""
        due = min(
            self.next_flush,
            self.heard_at + self.limits.model_idle,
            self.started + self.limits.model_deadline,
        )
        return due - time.monotonic()

    def heard(self) -> None:
        self.heard_at = time.monotonic()

    def flush_due(self) -> bool:
        now = time.monotonic()
        if now < self.next_flush:
            return False
        self.next_flush = now + self.limits.flush_interval
        return True

    def check(self) -> None:
        now = time.monotonic()
        if now - self.heard_at >= self.limits.model_idle:
            raise Stop(
                Run.Status.FAILED,
                f"The model sent nothing for {self.limits.model_idle:g} s, "
                "so the answer was given up.",
            )
        if now - self.started >= self.limits.model_deadline:
            raise Stop(
                Run.Status.FAILED,
                f"The model took more than {self.limits.model_deadline:g} s to answer, "
                "so the answer was given up.",
            )


def cut_reason(reason: str) -> str:
    """Why an answer the model cut short is incomplete, in plain words."""
    if reason == "length":
        return "The answer was cut off: the model reached its length limit."
    if reason == "content_filter":
        return "The answer was cut off by the model's content filter."
    return f"The answer was cut off: the model stopped early (it said “{reason}”)."
