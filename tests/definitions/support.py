"""Helpers shared by the tests/definitions/test_*.py files: run a management command, read every
row sync may write, write a definitions file."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from chatapp.models import Assistant, AssistantVersion, ConsultRule, HandoffRule


def command(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def rows() -> tuple[list[dict], ...]:
    """Everything sync may write, to prove that something wrote nothing."""
    return tuple(
        list(model.objects.order_by("pk").values())
        for model in (Assistant, HandoffRule, ConsultRule, AssistantVersion)
    )


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)
