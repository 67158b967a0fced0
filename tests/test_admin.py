"""The admin as the control room: assistants (tools, rules, template checks, preview,
protected deletion), versions (diff, restore), the workflow diagram, threads and the run
timeline; who may see and change what; and the CSP (no inline script or style)."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import strip_tags

from chatapp.api import say
from chatapp.diagram import workflow_svg
from chatapp.models import (
    Assistant,
    AssistantVersion,
    ConsultRule,
    HandoffRule,
    Message,
    Run,
    Thread,
)
from chatapp.providers.scripted import Say
from tests.factories import assistant as make_assistant
from tests.factories import rule as make_rule
from tests.html import inline_code

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def demo(site_editor: None) -> dict[str, Assistant]:
    return {a.slug: a for a in Assistant.objects.all()}


@pytest.fixture
def run(demo: dict[str, Assistant], user: Any) -> Run:
    """A real run of the demo: Welcome's select_page, then the handoff to the Page editor."""
    thread = Thread.start("welcome", user=user, title="Ada's chat")
    finished = say(thread, "I want to edit the about page")
    assert finished.status == "completed", finished.error
    return finished


@pytest.fixture
def non_staff(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_without_permissions(django_user_model: Any) -> Client:
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(clerk)
    return client


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """Staff who may view assistants and versions but change nothing."""
    from django.contrib.auth.models import Permission

    reader = django_user_model.objects.create_user("reader", password="pw", is_staff=True)
    reader.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="chatapp",
            codename__in=["view_assistant", "view_assistantversion", "view_handoffrule"],
        )
    )
    client = Client()
    client.force_login(reader)
    return client


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:chatapp_{name}", args=args)


def text(response: Any) -> str:
    """The page as a reader sees it: no tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(strip_tags(response.content.decode())).split())


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def svg_of(response: Any) -> str:
    match = re.search(r'<svg [^>]*class="workflow".*?</svg>', response.content.decode(), re.S)
    assert match, "no SVG on the page"
    return match.group(0)


def assistant_data(assistant: Assistant, **changes: Any) -> dict[str, Any]:
    """The change form of `assistant` as a browser would post it, with `changes` applied.
    `rules=[...]` and `consults=[...]` replace the inline rows (dicts of field values, with
    "id" for a saved row)."""
    fields = {
        "name": assistant.name,
        "slug": assistant.slug,
        "description": assistant.description,
        "instructions": assistant.instructions,
        "tools": list(assistant.tools),
        "provider": assistant.provider,
        "model": assistant.model,
        "temperature": "" if assistant.temperature is None else assistant.temperature,
        "max_steps": assistant.max_steps,
        "is_entry": assistant.is_entry,
    }
    saved = assistant.pk is not None
    rules = changes.pop(
        "rules",
        [rule_fields(r) for r in assistant.handoff_rules.order_by("order", "id")] if saved else [],
    )
    consults = changes.pop(
        "consults",
        [consult_fields(c) for c in assistant.consult_rules.order_by("order", "id")]
        if saved
        else [],
    )
    fields.update(changes)
    data: dict[str, Any] = {k: v for k, v in fields.items() if not isinstance(v, bool)}
    data.update({k: "on" for k, v in fields.items() if v is True})
    data.update(inline_data("handoff_rules", assistant, rules))
    data.update(inline_data("consult_rules", assistant, consults))
    return data


def inline_data(prefix: str, source: Assistant, rows: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": sum(1 for r in rows if r.get("id")),
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for i, values in enumerate(rows):
        for key, value in {"source": source.pk or "", **values}.items():
            if value is True:
                data[f"{prefix}-{i}-{key}"] = "on"
            elif value is not False:
                data[f"{prefix}-{i}-{key}"] = value
    return data


def consult_fields(consult: ConsultRule, **changes: Any) -> dict[str, Any]:
    values = {
        "id": consult.pk,
        "specialist": consult.specialist_id,
        "tool_name": consult.tool_name,
        "description": consult.description,
        "enabled": consult.enabled,
        "order": consult.order,
    }
    return {**values, **changes}


def rule_fields(rule: HandoffRule, **changes: Any) -> dict[str, Any]:
    import json

    values = {
        "id": rule.pk,
        "target": rule.target_id,
        "tool_name": rule.tool_name,
        "description": rule.description,
        "trigger": rule.trigger,
        "after_tool": rule.after_tool,
        "parameters": json.dumps(rule.parameters),
        "required_metadata": json.dumps(rule.required_metadata),
        "history": rule.history,
        "history_last_n": rule.history_last_n,
        "extra_instructions": rule.extra_instructions,
        "respond_immediately": rule.respond_immediately,
        "enabled": rule.enabled,
        "order": rule.order,
    }
    values.update(changes)
    return values


def new_rule(target: Assistant, **fields: Any) -> dict[str, Any]:
    return {
        "target": target.pk,
        "tool_name": "",
        "description": "",
        "trigger": "tool",
        "after_tool": "",
        "parameters": "{}",
        "required_metadata": "[]",
        "history": "full",
        "history_last_n": 6,
        "extra_instructions": "",
        "respond_immediately": True,
        "enabled": True,
        "order": 0,
        **fields,
    }


def inline_errors(response: Any) -> list[dict[str, Any]]:
    return response.context["inline_admin_formsets"][0].formset.errors


# --- every page renders for staff, under the CSP, and is refused to others ---------------------

PAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "admin index": lambda o: reverse("admin:index"),
    "app index": lambda o: reverse("admin:app_list", args=["chatapp"]),
    "assistant list": lambda o: url("assistant_changelist"),
    "assistant add": lambda o: url("assistant_add"),
    "assistant change": lambda o: url("assistant_change", o["editor"].pk),
    "assistant preview": lambda o: url("assistant_preview", o["editor"].pk),
    "assistant versions": lambda o: url("assistant_versions", o["editor"].pk),
    "assistant delete": lambda o: url("assistant_delete", o["editor"].pk),
    "workflow diagram": lambda o: url("assistant_diagram"),
    "version list": lambda o: url("assistantversion_changelist"),
    "version detail": lambda o: url("assistantversion_change", o["version"].pk),
    "thread list": lambda o: url("thread_changelist"),
    "thread change": lambda o: url("thread_change", o["run"].thread_id),
    "run list": lambda o: url("run_changelist"),
    "run change": lambda o: url("run_change", o["run"].pk),
}


@pytest.fixture
def objects(run: Run, demo: dict[str, Assistant]) -> dict[str, Any]:
    editor = demo["page-editor"]
    return {"run": run, "editor": editor, "version": editor.versions.first()}


@pytest.mark.parametrize("page", PAGES)
def test_every_admin_page_renders_for_staff_under_the_csp(admin_client, objects, page):
    response = admin_client.get(PAGES[page](objects))
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert inline_code(response.content.decode()) == []


@pytest.mark.parametrize("page", PAGES)
def test_every_admin_page_sends_a_non_staff_user_to_the_login(non_staff, client, objects, page):
    for visitor in (non_staff, client):  # logged in but not staff; anonymous
        response = visitor.get(PAGES[page](objects))
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


def test_staff_without_permission_are_refused_the_custom_pages(staff_without_permissions, demo):
    editor = demo["page-editor"]
    for page in (
        url("assistant_preview", editor.pk),
        url("assistant_versions", editor.pk),
        url("assistant_diagram"),
        url("assistant_changelist"),
    ):
        assert staff_without_permissions.get(page).status_code == 403
    restore = url("assistant_restore", editor.pk, 1)
    assert staff_without_permissions.post(restore).status_code == 403


def test_the_admin_links_to_the_custom_pages(admin_client, demo):
    editor = demo["page-editor"]
    change = admin_client.get(url("assistant_change", editor.pk)).content.decode()
    assert url("assistant_preview", editor.pk) in change
    assert url("assistant_versions", editor.pk) in change
    diagram = url("assistant_diagram")
    assert diagram in change
    assert diagram in admin_client.get(url("assistant_changelist")).content.decode()
    assert diagram in admin_client.get(reverse("admin:index")).content.decode()
    assert diagram in admin_client.get(reverse("admin:app_list", args=["chatapp"])).content.decode()


# --- the assistant list ------------------------------------------------------------------------


def test_the_assistant_list_shows_defaults_tools_and_rule_counts(admin_client, demo):
    response = admin_client.get(url("assistant_changelist"))
    page = text(response)
    assert "select_page, list_pages" in page
    assert "default" in page  # the demo names no model and no provider
    rows = {a.slug: a.rule_count for a in response.context["cl"].result_list}
    assert rows["welcome"] == 1 and rows["page-editor"] == 1


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
    (rule,) = welcome.handoff_rules.all()
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


# --- deleting is refused while something depends on the assistant ------------------------------


def test_deleting_a_rule_target_is_refused_with_what_blocks_it(admin_client, demo):
    editor = demo["page-editor"]
    response = admin_client.post(url("assistant_delete", editor.pk), {"post": "yes"})
    assert response.status_code == 200
    page = text(response)
    assert "would require deleting the following protected related objects" in page
    assert "Welcome → Page editor" in page and "Nothing was deleted" in page
    assert Assistant.objects.filter(pk=editor.pk).exists()


def test_deleting_an_assistant_a_thread_is_on_is_refused(admin_client, demo, user):
    lonely = make_assistant("lonely", provider="")
    Thread.start(lonely, user=user, title="Still talking")
    response = admin_client.post(url("assistant_delete", lonely.pk), {"post": "yes"})
    assert response.status_code == 200
    assert "Thread: Still talking" in text(response)
    assert Assistant.objects.filter(pk=lonely.pk).exists()


def test_the_bulk_delete_action_refuses_cleanly(admin_client, demo, user):
    lonely = make_assistant("lonely", provider="")
    Thread.start(lonely, user=user, title="Still talking")
    count = Assistant.objects.count()
    data = {
        "action": "delete_selected",
        "_selected_action": [demo["page-editor"].pk, lonely.pk],
        "post": "yes",
    }
    response = admin_client.post(url("assistant_changelist"), data)
    assert response.status_code == 200
    page = text(response)
    assert "protected related objects" in page and "Nothing was deleted" in page
    assert "Welcome → Page editor" in page and "Still talking" in page
    assert Assistant.objects.count() == count


def test_an_assistant_nothing_depends_on_can_be_deleted(admin_client, demo):
    spare = make_assistant("spare", provider="")
    response = admin_client.post(url("assistant_delete", spare.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Assistant.objects.filter(pk=spare.pk).exists()


# --- versions ----------------------------------------------------------------------------------


def test_an_admin_save_with_a_changed_rule_records_one_version(admin_client, demo):
    editor = demo["page-editor"]
    (back,) = editor.handoff_rules.all()
    before = list(editor.versions.values_list("number", flat=True))
    data = assistant_data(
        editor,
        instructions=editor.instructions + " Be brief.",
        rules=[rule_fields(back, description="Back to the welcome desk.")],
    )
    assert admin_client.post(url("assistant_change", editor.pk), data).status_code == 302
    after = list(editor.versions.values_list("number", flat=True))
    assert len(after) == len(before) + 1
    latest = editor.versions.order_by("-number").first()
    assert latest.snapshot["rules"][0]["description"] == "Back to the welcome desk."


def test_the_versions_page_shows_diffs_and_restore_brings_back_the_old(admin_client, demo):
    editor = demo["page-editor"]
    original = editor.instructions
    old = editor.versions.order_by("-number").first()
    data = assistant_data(editor, instructions="You edit {{ metadata.page_id }} tersely.")
    assert admin_client.post(url("assistant_change", editor.pk), data).status_code == 302

    response = admin_client.get(url("assistant_versions", editor.pk))
    page = response.content.decode()
    assert re.search(
        r'chatapp-diff__line--remove">-\s+You are editing the page \{\{ metadata.page_id \}\}',
        page,
    )
    assert re.search(r'chatapp-diff__line--add">\+\s+You edit \{\{ metadata.page_id \}\}', page)
    assert f"Restore v{old.number}" in page
    assert "used by 0 runs" in text(response)

    response = admin_client.post(url("assistant_restore", editor.pk, old.number), follow=True)
    assert response.status_code == 200
    editor.refresh_from_db()
    assert editor.instructions == original
    newest = editor.versions.order_by("-number").first()
    assert newest.number == old.number + 2 and newest.snapshot == old.snapshot
    assert f"Restored v{old.number} of Page editor; saved as v{newest.number}." in messages_of(
        response
    )


def test_restoring_needs_the_change_permission_and_a_post(viewer, admin_client, demo):
    editor = demo["page-editor"]
    first = editor.versions.order_by("number").first()
    Assistant.objects.filter(pk=editor.pk).update(instructions="Changed.")
    editor.refresh_from_db()
    editor.save()  # records a version, so the first one is no longer the latest

    response = viewer.get(url("assistant_versions", editor.pk))
    assert response.status_code == 200 and "Restore v" not in response.content.decode()
    assert viewer.post(url("assistant_restore", editor.pk, first.number)).status_code == 403
    assert admin_client.get(url("assistant_restore", editor.pk, first.number)).status_code == 405
    editor.refresh_from_db()
    assert editor.instructions == "Changed."


def test_a_restore_that_cannot_be_done_is_an_admin_error_message(admin_client):
    source, target = make_assistant("source"), make_assistant("target")
    handoff = make_rule(source, target)
    with_rule = source.versions.order_by("-number").first()
    handoff.delete()
    target.delete()
    response = admin_client.post(url("assistant_restore", source.pk, with_rule.number), follow=True)
    assert response.status_code == 200
    assert any("no longer exist: target" in m for m in messages_of(response))


def test_versions_are_read_only_in_the_admin(admin_client, demo):
    version = AssistantVersion.objects.first()
    assert admin_client.get(url("assistantversion_add")).status_code == 403
    response = admin_client.post(url("assistantversion_change", version.pk), {"number": 99})
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.number != 99


# --- the workflow diagram ----------------------------------------------------------------------


def test_the_diagram_draws_every_assistant_and_rule(admin_client, demo):
    welcome, editor = demo["welcome"], demo["page-editor"]
    svg = svg_of(admin_client.get(url("assistant_diagram")))
    ET.fromstring(svg)  # well-formed
    for a in (welcome, editor):
        assert f'<a href="{url("assistant_change", a.pk)}"' in svg
        assert f">{a.name}</text>" in svg
    assert "workflow-node--entry" in svg and "welcome · entry" in svg
    after = re.search(r'<g class="workflow-edge workflow-edge--after-tool">.*?</g>', svg, re.S)
    tool = re.search(r'<g class="workflow-edge workflow-edge--tool">.*?</g>', svg, re.S)
    assert after and tool
    assert "after select_page" in after.group(0) and "needs page_id" in after.group(0)
    assert 'stroke-dasharray="7 5"' in after.group(0)
    assert "edit_another_page" in tool.group(0) and "stroke-dasharray" not in tool.group(0)


def test_the_diagram_escapes_names_and_greys_disabled_rules(admin_client, demo):
    evil = make_assistant("evil", name="<script>alert(1)</script>", provider="")
    make_rule(demo["welcome"], evil, tool_name="to_evil", enabled=False)
    svg = svg_of(admin_client.get(url("assistant_diagram")))
    ET.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    disabled = re.search(r'<g class="[^"]*workflow-edge--disabled">.*?</g>', svg, re.S)
    assert disabled and "to_evil (disabled)" in disabled.group(0)
    assert 'marker-end="url(#workflow-arrow-disabled)"' in disabled.group(0)


def test_the_diagram_layout_is_deterministic_and_parts_parallel_edges():
    def node(pk: int, name: str, entry: bool = False) -> SimpleNamespace:
        return SimpleNamespace(pk=pk, slug=name.lower(), name=name, is_entry=entry)

    def edge(source: int, target: int, name: str) -> SimpleNamespace:
        return SimpleNamespace(
            source_id=source,
            target_id=target,
            tool_name=name,
            trigger="tool",
            after_tool="",
            required_metadata=[],
            enabled=True,
        )

    nodes = [node(1, "Start", entry=True), node(2, "Middle"), node(3, "End"), node(4, "Alone")]
    edges = [edge(1, 2, "a"), edge(2, 1, "b"), edge(2, 3, "c"), edge(3, 3, "again")]
    svg = workflow_svg(nodes, edges, lambda a: f"/a/{a.pk}/")
    assert svg == workflow_svg(nodes, edges, lambda a: f"/a/{a.pk}/")
    ET.fromstring(svg)
    paths = re.findall(r'<path d="(M[^"]+[QC][^"]+)"', svg)
    assert len(paths) == 4 and len(set(paths)) == 4  # A→B and B→A do not overlap
    assert "No assistants yet." in workflow_svg([], [], str)


# --- threads and runs --------------------------------------------------------------------------


def test_the_thread_page_shows_messages_read_only_and_saves_metadata(admin_client, run):
    thread = run.thread
    response = admin_client.get(url("thread_change", thread.pk))
    page = text(response)
    assert "I want to edit the about page" in page and "select_page" in page
    assert 'name="messages-0-content"' not in response.content.decode()  # read-only

    messages = list(thread.messages.order_by("id"))
    data = {
        "owner": thread.owner_id,
        "title": thread.title,
        "current_assistant": thread.current_assistant_id,
        "metadata": '{"page_id": "home"}',
        "messages-TOTAL_FORMS": len(messages),
        "messages-INITIAL_FORMS": len(messages),
        "messages-MIN_NUM_FORMS": 0,
        "messages-MAX_NUM_FORMS": 1000,
    }
    for i, message in enumerate(messages):
        data[f"messages-{i}-id"] = message.pk
        data[f"messages-{i}-thread"] = thread.pk
    assert admin_client.post(url("thread_change", thread.pk), data).status_code == 302
    thread.refresh_from_db()
    assert thread.metadata == {"page_id": "home"}
    assert Message.objects.filter(thread=thread).count() == len(messages)

    data["metadata"] = '["not", "an", "object"]'
    response = admin_client.post(url("thread_change", thread.pk), data)
    assert response.status_code == 200
    assert "metadata" in response.context["adminform"].form.errors


def test_the_thread_list_searches_and_filters(admin_client, run, demo):
    found = admin_client.get(url("thread_changelist"), {"q": "ada"})
    assert [t.pk for t in found.context["cl"].result_list] == [run.thread_id]
    on_welcome = admin_client.get(
        url("thread_changelist"), {"current_assistant__id__exact": demo["welcome"].pk}
    )
    assert list(on_welcome.context["cl"].result_list) == []
    consultations = admin_client.get(url("thread_changelist"), {"kind": "consultation"})
    assert list(consultations.context["cl"].result_list) == []
    conversations = admin_client.get(url("thread_changelist"), {"kind": "conversation"})
    assert [t.pk for t in conversations.context["cl"].result_list] == [run.thread_id]


def test_the_run_timeline_shows_tool_calls_and_the_handoff(admin_client, run):
    response = admin_client.get(url("run_change", run.pk))
    page = text(response)
    assert "Welcome called select_page" in page
    assert 'Arguments{ "page": "about" }' in page
    assert "Opened About us (about)" in page
    assert "Welcome → Page editor" in page and "page_id: about" in page
    assert "Page editor spoke" in page and "You are editing the page about" in page
    assert "tokens:" in page
    kinds = [item.kind for item in response.context["timeline"]]
    assert kinds == list(run.steps.order_by("index").values_list("kind", flat=True))


def test_a_failed_tool_call_is_styled_as_an_error(admin_client, demo, user):
    thread = Thread.start("welcome", user=user)
    finished = say(thread, "I want to edit the nowhere page")
    response = admin_client.get(url("run_change", finished.pk))
    assert 'class="chatapp-pre chatapp-error"' in response.content.decode()
    assert "There is no page" in text(response)


def test_runs_are_read_only_but_deletable(admin_client, run):
    assert admin_client.get(url("run_add")).status_code == 403
    response = admin_client.post(url("run_change", run.pk), {"status": "failed"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == "completed"
    listing = text(admin_client.get(url("run_changelist")))
    assert "Completed" in listing and re.search(r"\d+ ms|\d+\.\d\d s", listing)
    response = admin_client.post(url("run_delete", run.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists()


# --- consultations -----------------------------------------------------------------------------


@pytest.fixture
def author() -> Assistant:
    """An assistant that may consult a reviewer (both on scripted models)."""
    author = make_assistant("author", name="Author", tools=["list_pages"])
    reviewer = make_assistant(
        "reviewer", name="Reviewer", provider="reviewer-model", description="Judges drafts."
    )
    ConsultRule.objects.create(source=author, specialist=reviewer)
    return author


def test_consultations_are_configured_inline(admin_client, author, demo):
    (consult,) = author.consult_rules.all()
    data = assistant_data(
        author,
        consults=[
            consult_fields(consult),
            {"specialist": demo["welcome"].pk, "tool_name": "", "description": "", "order": 1},
        ],
    )
    assert admin_client.post(url("assistant_change", author.pk), data).status_code == 302
    assert set(author.consult_rules.values_list("tool_name", flat=True)) == {
        "ask_reviewer",
        "ask_welcome",
    }
    # A rule named like one of the assistant's own tools would never reach the model.
    data = assistant_data(author, consults=[consult_fields(consult, tool_name="list_pages")])
    response = admin_client.post(url("assistant_change", author.pk), data)
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][1].formset.errors
    assert "own tools" in errors[0]["tool_name"][0]
    data = assistant_data(author, rules=[new_rule(demo["welcome"], tool_name="list_pages")])
    response = admin_client.post(url("assistant_change", author.pk), data)
    assert "own tools" in inline_errors(response)[0]["tool_name"][0]


def test_the_preview_and_the_diagram_show_consultations(admin_client, author):
    page = text(admin_client.get(url("assistant_preview", author.pk)))
    assert "ask_reviewer consult" in page and "Judges drafts." in page
    assert '"message_to_assistant": {' in page
    svg = svg_of(admin_client.get(url("assistant_diagram")))
    consult = re.search(r'<g class="workflow-edge workflow-edge--consult">.*?</g>', svg, re.S)
    assert consult and "ask_reviewer" in consult.group(0)
    assert 'stroke-dasharray="2 4"' in consult.group(0)


def test_the_timeline_shows_a_consultation_and_links_its_run(admin_client, author, user, script):
    script(
        Say("", calls=[("ask_reviewer", {"message_to_assistant": "Is 'Fresh daily' good?"})]),
        Say("Going with it."),
    )
    script(Say("Short and clear."), name="reviewer-model")
    finished = say(Thread.start(author, user=user), "write a tagline")
    assert finished.status == "completed", finished.error
    response = admin_client.get(url("run_change", finished.pk))
    page = text(response)
    assert "Author asked Reviewer (ask_reviewer)" in page
    assert '"message_to_assistant": "Is \'Fresh daily\' good?"' in page
    assert "Short and clear." in page
    child = Run.objects.get(thread__parent=finished.thread)
    assert url("run_change", child.pk) in response.content.decode()
    assert admin_client.get(url("run_change", child.pk)).status_code == 200
    assert inline_code(response.content.decode()) == []


def test_deleting_a_consulted_specialist_is_refused(admin_client, author):
    reviewer = Assistant.objects.get(slug="reviewer")
    response = admin_client.post(url("assistant_delete", reviewer.pk), {"post": "yes"})
    assert response.status_code == 200
    assert "Author asks Reviewer" in text(response)
    assert Assistant.objects.filter(pk=reviewer.pk).exists()
