"""Consult rules in the admin: the inline, the preview and the diagram, the timeline of a
consultation, and the refused deletion of a consulted specialist."""

from __future__ import annotations

import re

import pytest

from chatapp import services
from chatapp.models import Assistant, ConsultRule, Run
from chatapp.providers.scripted import Say
from chatapp.runs import say
from tests.admin.support import (
    assistant_data,
    consult_fields,
    inline_errors,
    new_rule,
    svg_of,
    text,
    url,
)
from tests.factories import assistant as make_assistant
from tests.html import inline_code

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


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
    finished = say(services.start_thread(author, user=user), "write a tagline")
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
