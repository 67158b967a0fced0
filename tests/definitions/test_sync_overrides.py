"""Per-environment overrides (CHATAPP_ASSISTANT_OVERRIDES) and their errors."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from chatapp.models import Assistant
from tests.definitions.support import command, rows, write

pytestmark = pytest.mark.django_db(transaction=True)


# --- overrides -----------------------------------------------------------------------------


def test_overrides_change_an_assistant_per_environment(settings):
    settings.CHATAPP_ASSISTANT_OVERRIDES = {
        "page-editor": {"model": "gpt-5-mini", "provider": "openai"}
    }
    command("sync_assistants")
    editor, welcome = (Assistant.objects.get(slug=s) for s in ("page-editor", "welcome"))
    assert (editor.provider, editor.model) == ("openai", "gpt-5-mini")
    assert (welcome.provider, welcome.model) == ("", "")
    assert command("sync_assistants").startswith("No changes")  # overrides are stable

    settings.CHATAPP_ASSISTANT_OVERRIDES = {}
    out = command("sync_assistants")
    assert '~ assistant page-editor: model "gpt-5-mini" → ""' in out.splitlines()


def test_the_star_override_applies_to_all_and_a_slug_wins_over_it(settings):
    settings.CHATAPP_ASSISTANT_OVERRIDES = {
        "*": {"model": "small", "max_steps": 4},
        "page-editor": {"model": "large"},
    }
    command("sync_assistants")
    assert set(Assistant.objects.values_list("slug", "model", "max_steps")) == {
        ("welcome", "small", 4),
        ("page-editor", "large", 4),
        ("writer", "small", 4),
        ("critic", "small", 4),
        ("data-analyst", "small", 4),
    }


def test_seed_demo_applies_overrides(settings):
    settings.CHATAPP_ASSISTANT_OVERRIDES = {"welcome": {"temperature": 0.1}}
    command("seed_demo")
    assert Assistant.objects.get(slug="welcome").temperature == 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"page-editor": {"modle": "x"}},
            "CHATAPP_ASSISTANT_OVERRIDES['page-editor']: 'modle' cannot be overridden",
        ),
        (
            {"*": {"handoffs": []}},
            "CHATAPP_ASSISTANT_OVERRIDES['*']: 'handoffs' cannot be overridden",
        ),
        (
            {"writer": {"consults": []}},
            "CHATAPP_ASSISTANT_OVERRIDES['writer']: 'consults' cannot be overridden",
        ),
        (
            {"page-edtor": {"model": "x"}},
            "CHATAPP_ASSISTANT_OVERRIDES names assistants that are not defined: page-edtor.",
        ),
        (
            {"welcome": {"max_steps": "many"}},
            "CHATAPP_ASSISTANT_OVERRIDES: assistant 'welcome': max_steps: Input should be a "
            "valid integer",
        ),
        ({"welcome": "gpt-5"}, "CHATAPP_ASSISTANT_OVERRIDES['welcome'] must be a mapping"),
    ],
)
def test_bad_overrides_are_errors(settings, overrides, message):
    settings.CHATAPP_ASSISTANT_OVERRIDES = overrides
    with pytest.raises(CommandError) as error:
        command("sync_assistants")
    assert str(error.value).startswith(message)
    assert rows() == ([], [], [], [])


def test_an_override_may_name_an_assistant_defined_elsewhere(settings, tmp_path):
    """Syncing one file must not trip over the overrides of the site editor's assistants."""
    settings.CHATAPP_ASSISTANT_OVERRIDES = {"page-editor": {"model": "x"}}
    path = write(tmp_path / "a.yaml", "assistants:\n  - slug: solo\n    name: Solo\n")
    assert command("sync_assistants", file=[path]).startswith("+ assistant solo")
