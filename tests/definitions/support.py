"""Helpers shared by the tests/definitions/test_*.py files: run a management command, read every
row sync may write, write a definitions file."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from assistants_registry.data_analyst import assistants as data_analyst
from assistants_registry.site_editor import assistants as site_editor
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


# The site editor's assistants, with the Data analyst its Welcome can hand off to: synced
# without it, Welcome's handoff would have no target.
SITE_EDITOR = (*site_editor.ASSISTANTS, *data_analyst.ASSISTANTS)
