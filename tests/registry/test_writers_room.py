"""The second example workflow: the Writer consults the Critic, with the offline model."""

from __future__ import annotations

import pytest

from chatapp import services
from chatapp.models import Assistant, ConsultRule, Message, Run, Thread
from chatapp.runs import say

pytestmark = pytest.mark.django_db(transaction=True)

ASK = 'Ask the critic about "Fresh bread every morning"'
CRITICS_ANSWER = (
    "Critic (offline model): You are the Critic. You said: “Fresh bread every morning”."
)


def test_seed_demo_seeds_the_writers_room(site_editor):
    writer, critic = Assistant.objects.get(slug="writer"), Assistant.objects.get(slug="critic")
    assert writer.is_entry and not critic.is_entry
    assert writer.tools == [] and "ask_critic" in writer.instructions
    rule = ConsultRule.objects.get(source=writer)
    assert (rule.specialist, rule.tool_name, rule.enabled) == (critic, "ask_critic", True)


def test_the_writer_consults_the_critic(site_editor, user):
    thread = services.start_thread("writer", user=user)

    run = say(thread, ASK)

    assert run.status == Run.Status.COMPLETED, run.error
    step = run.steps.get(kind="consult")
    assert step.data["name"] == "ask_critic" and step.data["specialist"] == "critic"
    assert step.data["arguments"] == '{"message_to_assistant": "Fresh bread every morning"}'
    child = Thread.objects.get(pk=step.data["child_thread"])
    assert (child.owner, child.parent, child.parent_step) == (user, thread, step)
    assert child.current_assistant.slug == "critic"
    question, answer = child.messages.order_by("id")
    assert (question.role, question.content) == ("user", "Fresh bread every morning")
    assert (answer.role, answer.assistant.slug, answer.content) == (
        "assistant",
        "critic",
        CRITICS_ANSWER,
    )
    result = thread.messages.get(role=Message.Role.TOOL)
    assert result.content == CRITICS_ANSWER == step.data["output"]
    final = thread.messages.filter(role=Message.Role.ASSISTANT).order_by("id").last()
    assert final.assistant.slug == "writer"
    assert final.content == f"Writer (offline model): Done: ask_critic → {CRITICS_ANSWER}"
    thread.refresh_from_db()
    assert thread.current_assistant.slug == "writer"  # consulted, not handed over


def test_without_a_draft_the_writer_answers_in_its_own_voice(site_editor, user):
    """The offline model needs the draft (quoted text) to fill message_to_assistant."""
    thread = services.start_thread("writer", user=user)
    run = say(thread, "Ask the critic")
    assert run.status == Run.Status.COMPLETED
    assert not run.steps.filter(kind="consult").exists()
    assert not Thread.objects.filter(parent=thread).exists()
    (reply,) = thread.messages.filter(role=Message.Role.ASSISTANT)
    assert reply.content.startswith("Writer (offline model): You are the Writer.")
    assert "Tools I can call: ask_critic." in reply.content
