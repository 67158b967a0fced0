"""export_assistants: the round trip export → sync → export, sorted output without defaults."""

from __future__ import annotations

import pytest

from chatapp.definitions.discovery import discover
from chatapp.definitions.sync import sync
from chatapp.models import Assistant, ConsultRule, HandoffRule
from tests.definitions.support import command, write

pytestmark = pytest.mark.django_db(transaction=True)


SUPPORT_YAML = """\
assistants:
  - slug: support
    name: Support
    instructions: |
      You answer questions about {{ metadata.page_id }}.

        Indented example line.
      Be brief.
    temperature: 0.2
    max_steps: 3
    tools:
      - show_page
    handoffs:
      - target: page-editor
        tool_name: open_editor
        history: last_n
        history_last_n: 2
        respond_immediately: false
        parameters:
          type: object
          properties:
            page_id: {type: string, description: The page to edit.}
            mode: {enum: [text, layout]}
          required: [page_id]
    consults:
      - specialist: critic
        tool_name: second_opinion
        description: A second opinion on an answer.
        enabled: false
      - specialist: welcome
"""


# --- export --------------------------------------------------------------------------------


def test_export_then_sync_on_an_empty_database_then_export_gives_the_same_text(tmp_path):
    sync(discover())
    command("sync_assistants", file=[write(tmp_path / "support.yaml", SUPPORT_YAML)])
    first = command("export_assistants")
    assert (
        "    instructions: |\n      You answer questions about {{ metadata.page_id }}.\n" in first
    )
    assert "        Indented example line.\n" in first
    assert "              enum:\n                - text\n                - layout\n" in first
    assert (
        "    consults:\n      - specialist: critic\n        tool_name: second_opinion\n"
        "        description: A second opinion on an answer.\n        enabled: false\n"
        "      - specialist: welcome\n"
    ) in first
    assert first.endswith("    consults:\n      - specialist: critic\n")  # the Writer's, last

    exported = write(tmp_path / "export.yaml", first)
    HandoffRule.objects.all().delete()
    ConsultRule.objects.all().delete()
    Assistant.objects.all().delete()
    command("sync_assistants", file=[exported])
    second = command("export_assistants", output=str(tmp_path / "again.yaml"))

    assert second == "Wrote 6 assistants to " + str(tmp_path / "again.yaml") + ".\n"
    assert (tmp_path / "again.yaml").read_text(encoding="utf-8") == first
    support = HandoffRule.objects.get(source__slug="support")
    assert support.parameters["required"] == ["page_id"]
    assert (support.history, support.history_last_n, support.respond_immediately) == (
        "last_n",
        2,
        False,
    )
    assert list(
        ConsultRule.objects.filter(source__slug="support").values_list(
            "specialist__slug", "tool_name", "enabled", "order"
        )
    ) == [("critic", "second_opinion", False, 0), ("welcome", "ask_welcome", True, 1)]


def test_export_is_sorted_and_omits_defaults():
    sync(discover())
    text = command("export_assistants")
    assert text.index("- slug: page-editor") < text.index("- slug: welcome")
    assert "max_steps" not in text and "enabled" not in text
    assert "tool_name: transfer_to_page_editor" not in text  # the default name stays implicit
    assert "tool_name: edit_another_page" in text
    assert "consults:\n      - specialist: critic\n" in text
    assert "tool_name: ask_critic" not in text
