"""The assistant admin: the list, tools as checkboxes, templates and rules checked on save,
and the preview of what the model receives."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatapp.models import Assistant, HandoffRule
from tests.admin.support import assistant_data, inline_errors, new_rule, rule_fields, text, url
from tests.factories import assistant as make_assistant
from tests.factories import rule as make_rule

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


# --- the assistant list ------------------------------------------------------------------------


def test_the_assistant_list_shows_defaults_tools_and_rule_counts(admin_client, demo):
    response = admin_client.get(url("assistant_changelist"))
    page = text(response)
    assert "select_page, list_pages" in page
    assert "default" in page  # the demo names no model and no provider
    rows = {a.slug: a.rule_count for a in response.context["cl"].result_list}
    assert rows["welcome"] == 2 and rows["page-editor"] == 1  # Welcome's: editor, analyst


def test_the_assistant_list_costs_the_same_queries_for_more_assistants(admin_client, demo):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url("assistant_changelist")).status_code == 200
        return len(captured)

    before = queries()
    for n in range(4):
        extra = make_assistant(f"extra-{n}", tools=["list_pages"])
        make_rule(extra, demo["welcome"], tool_name=f"back_{n}")
    assert queries() == before


def test_the_assistant_list_filters_and_searches(admin_client, demo):
    make_assistant("custom", provider="openai", instructions="Speak like a pirate.")
    by_provider = admin_client.get(url("assistant_changelist"), {"provider": "openai"})
    assert [a.slug for a in by_provider.context["cl"].result_list] == ["custom"]
    default = admin_client.get(url("assistant_changelist"), {"provider": "-"})
    assert {"welcome", "page-editor"} <= {a.slug for a in default.context["cl"].result_list}
    assert "custom" not in {a.slug for a in default.context["cl"].result_list}
    found = admin_client.get(url("assistant_changelist"), {"q": "pirate"})
    assert [a.slug for a in found.context["cl"].result_list] == ["custom"]


# --- tools as checkboxes -----------------------------------------------------------------------


def test_tools_are_checkboxes_of_the_registry_with_descriptions(admin_client, demo):
    response = admin_client.get(url("assistant_add"))
    page = response.content.decode()
    for name in ("select_page", "list_pages", "set_title", "show_page"):
        assert re.search(rf'<input type="checkbox" name="tools" value="{name}"', page)
    assert "select_page — Open one of the site's pages" in text(response)

    data = assistant_data(
        Assistant(slug="reader", name="Reader", instructions="Read pages."),
        tools=["show_page", "list_pages"],
        rules=[],
    )
    assert admin_client.post(url("assistant_add"), data).status_code == 302
    assert Assistant.objects.get(slug="reader").tools == ["list_pages", "show_page"]


def test_a_tool_that_is_not_installed_stays_visible_and_is_kept(admin_client, demo):
    welcome = demo["welcome"]
    Assistant.objects.filter(pk=welcome.pk).update(tools=["select_page", "retired_tool"])
    welcome.refresh_from_db()
    response = admin_client.get(url("assistant_change", welcome.pk))
    assert "retired_tool (not installed)" in text(response)
    assert re.search(r'value="retired_tool"[^>]*checked', response.content.decode())

    response = admin_client.post(url("assistant_change", welcome.pk), assistant_data(welcome))
    assert response.status_code == 302
    welcome.refresh_from_db()
    assert welcome.tools == ["select_page", "retired_tool"]  # order kept too


def test_staff_choose_which_tools_ask_the_user_first(admin_client, demo):
    editor = demo["page-editor"]
    response = admin_client.get(url("assistant_change", editor.pk))
    assert "Ask before running" in text(response)
    assert "update_settings — " in text(response) and "asks the user before some calls" in text(
        response
    )
    data = assistant_data(editor, ask_before=["set_body"])
    assert admin_client.post(url("assistant_change", editor.pk), data).status_code == 302
    editor.refresh_from_db()
    assert editor.ask_before == ["set_body"]

    data = assistant_data(editor, ask_before=["select_page"])  # not one of its tools
    response = admin_client.post(url("assistant_change", editor.pk), data)
    assert response.status_code == 200
    assert "Not among its tools: select_page" in text(response)


# --- templates and rules are checked on save ---------------------------------------------------


@pytest.mark.parametrize(
    ("instructions", "expected"),
    [("{% if %}broken", "could not be rendered"), ("{{ metadata.page_id|shout }}", "shout")],
)
def test_instructions_that_do_not_render_are_refused(admin_client, demo, instructions, expected):
    editor = demo["page-editor"]
    versions_before = editor.versions.count()
    response = admin_client.post(
        url("assistant_change", editor.pk), assistant_data(editor, instructions=instructions)
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["instructions"] and expected in errors["instructions"][0]
    editor.refresh_from_db()
    assert editor.instructions.startswith("You are editing the page {{ metadata.page_id }}")
    assert editor.versions.count() == versions_before


def test_an_invalid_template_in_a_new_assistant_saves_nothing(admin_client, demo):
    rules_before = HandoffRule.objects.count()
    data = assistant_data(
        Assistant(slug="broken", name="Broken", instructions="{% if %}"),
        rules=[new_rule(demo["welcome"])],
    )
    response = admin_client.post(url("assistant_add"), data)
    assert response.status_code == 200
    assert "instructions" in response.context["adminform"].form.errors
    assert not Assistant.objects.filter(slug="broken").exists()
    assert HandoffRule.objects.count() == rules_before


def test_a_rules_extra_instructions_are_rendered_on_save(admin_client, demo):
    editor = demo["page-editor"]
    (back,) = editor.handoff_rules.all()
    data = assistant_data(
        editor, rules=[rule_fields(back, extra_instructions="Done with {% endif %}")]
    )
    response = admin_client.post(url("assistant_change", editor.pk), data)
    assert response.status_code == 200
    assert "could not be rendered" in inline_errors(response)[0]["extra_instructions"][0]
    back.refresh_from_db()
    assert "{% endif %}" not in back.extra_instructions


def test_rule_parameters_must_be_a_supported_schema(admin_client, demo):
    editor = demo["page-editor"]
    (back,) = editor.handoff_rules.all()
    data = assistant_data(editor, rules=[rule_fields(back, parameters='{"type": "array"}')])
    response = admin_client.post(url("assistant_change", editor.pk), data)
    assert response.status_code == 200
    assert '"type": "object"' in inline_errors(response)[0]["parameters"][0]


def test_an_after_tool_rule_must_name_a_tool_of_its_assistant(admin_client, demo):
    welcome = demo["welcome"]
    rule = welcome.handoff_rules.get(trigger="after_tool")
    # Unticking select_page while the rule still fires after it is refused...
    response = admin_client.post(
        url("assistant_change", welcome.pk), assistant_data(welcome, tools=["list_pages"])
    )
    assert response.status_code == 200
    assert "no tool 'select_page'" in inline_errors(response)[0]["after_tool"][0]
    # ...and so is an after-tool rule without a tool.
    data = assistant_data(welcome, rules=[rule_fields(rule, after_tool="")])
    response = admin_client.post(url("assistant_change", welcome.pk), data)
    assert "after_tool" in inline_errors(response)[0]
    welcome.refresh_from_db()
    assert welcome.tools == ["select_page", "list_pages"]


def test_a_new_rule_gets_its_default_tool_name(admin_client, demo):
    extra = make_assistant("helper", provider="")
    data = assistant_data(extra, rules=[new_rule(demo["welcome"]), new_rule(demo["page-editor"])])
    response = admin_client.post(url("assistant_change", extra.pk), data)
    assert response.status_code == 302
    names = sorted(extra.handoff_rules.values_list("tool_name", flat=True))
    assert names == ["transfer_to_page_editor", "transfer_to_welcome"]
    # Two rules with one tool name are a form error, not a database error.
    data = assistant_data(
        extra,
        rules=[
            new_rule(demo["welcome"], tool_name="go"),
            new_rule(demo["page-editor"], tool_name="go"),
        ],
    )
    response = admin_client.post(url("assistant_change", extra.pk), data)
    assert response.status_code == 200
    assert extra.handoff_rules.count() == 2


# --- the preview -------------------------------------------------------------------------------


def test_the_preview_shows_what_the_model_receives(admin_client, demo):
    response = admin_client.get(url("assistant_preview", demo["page-editor"].pk))
    page = text(response)
    assert "You are editing the page sample" in page
    for name in ("set_title", "set_body", "set_layout", "update_settings", "show_page"):
        assert name in page
    assert "edit_another_page" in page and "Go back to Welcome" in page
    assert '"title": { "description": "The new title.", "type": "string" }' in page
    assert '"required": [ "title" ]' in page
    assert "The user has finished with sample" not in page  # that is appended to Welcome


def test_the_preview_shows_after_tool_handoffs_and_arrivals(admin_client, demo):
    page = text(admin_client.get(url("assistant_preview", demo["welcome"].pk)))
    assert "after select_page succeeds → Page editor (needs page_id)" in page
    assert "The user has finished with sample and wants another page." in page


def test_the_preview_shows_a_broken_template_instead_of_failing(admin_client, demo):
    editor = demo["page-editor"]
    Assistant.objects.filter(pk=editor.pk).update(instructions="{% if %}")
    response = admin_client.get(url("assistant_preview", editor.pk))
    assert response.status_code == 200
    assert "could not be rendered" in text(response)
