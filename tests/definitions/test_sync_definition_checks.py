"""Definitions are checked as the admin checks them: unknown tools warn, bad rules and bad
types are errors."""

from __future__ import annotations

import dataclasses

import pytest

from assistants_registry.data_analyst.assistants import DATA_ANALYST
from assistants_registry.definitions import DefinitionError, HandoffDefinition
from assistants_registry.site_editor.assistants import PAGE_EDITOR, WELCOME
from chatapp.definitions.report import report
from chatapp.definitions.sync import sync
from chatapp.models import Assistant
from tests.definitions.support import rows

pytestmark = pytest.mark.django_db(transaction=True)


def test_unknown_tools_are_a_warning_not_an_error():
    welcome = dataclasses.replace(WELCOME, tools=("list_pages", "search"), origin="here")
    out = report(sync([welcome, PAGE_EDITOR, DATA_ANALYST]))
    assert out[-2:] == [
        "! here: assistant 'welcome': tool 'search' is not in this installation's tool registry",
        "! here: assistant 'welcome': a handoff follows tool 'select_page', which is not among "
        "its tools",
    ]
    assert Assistant.objects.get(slug="welcome").tools == ["list_pages", "search"]


def test_rules_are_checked_as_the_admin_checks_them():
    bad = HandoffDefinition(target="welcome", parameters={"type": "object", "properties": {"x": 1}})
    editor = dataclasses.replace(PAGE_EDITOR, handoffs=(bad,), origin="here")
    with pytest.raises(DefinitionError) as error:
        sync([WELCOME, editor, DATA_ANALYST])
    assert str(error.value) == (
        "here: assistant 'page-editor': rule transfer_to_welcome: "
        "parameters: The schema of 'x' must be an object."
    )
    assert rows() == ([], [], [], [])


def test_python_definitions_get_the_same_type_checks():
    with pytest.raises(DefinitionError, match=r"max_steps: Input should be a valid integer"):
        sync([dataclasses.replace(WELCOME, max_steps="8", handoffs=())])
    with pytest.raises(DefinitionError, match=r"'welcome': tools: Input should be a valid list"):
        sync([dataclasses.replace(WELCOME, tools=("select_page"), handoffs=())])


def test_an_assistant_as_code_can_ask_before_its_own_tools_only():
    asking = dataclasses.replace(PAGE_EDITOR, ask_before=("set_body",))
    sync([WELCOME, asking, DATA_ANALYST])
    assert Assistant.objects.get(slug="page-editor").ask_before == ["set_body"]
    stranger = dataclasses.replace(PAGE_EDITOR, ask_before=("select_page",), origin="here")
    with pytest.raises(DefinitionError, match="ask_before: Not among its tools: select_page"):
        sync([WELCOME, stranger, DATA_ANALYST])
