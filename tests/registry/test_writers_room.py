"""The second example workflow: the Writer consults the Critic — with the offline model,
and scripted through chatapp.testing."""

from __future__ import annotations

import pytest

from chatapp.models import Assistant, ConsultRule, Run, Thread
from chatapp.testing import call, say

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


def test_the_writer_consults_the_critic(site_editor, conversation):
    chat = conversation("writer")  # the offline model

    chat.send(ASK)

    assert chat.status == Run.Status.COMPLETED
    assert chat.tool_calls == [
        ("ask_critic", {"message_to_assistant": "Fresh bread every morning"})
    ]
    assert chat.consultations == [("ask_critic", CRITICS_ANSWER)]
    assert chat.reply == f"Writer (offline model): Done: ask_critic → {CRITICS_ANSWER}"
    assert chat.assistant == "writer"  # consulted, not handed over
    step = chat.run.steps.get(kind="consult")
    assert step.data["specialist"] == "critic"
    child = Thread.objects.get(pk=step.data["child_thread"])
    assert (child.owner, child.parent, child.parent_step) == (chat.thread.owner, chat.thread, step)
    question, answer = child.messages.order_by("id")
    assert (question.role, question.content) == ("user", "Fresh bread every morning")
    assert (answer.role, answer.assistant.slug, answer.content) == (
        "assistant",
        "critic",
        CRITICS_ANSWER,
    )


def test_a_scripted_critic(site_editor, conversation):
    """Each assistant its own script: the Writer's, and the Critic's when it is consulted."""
    chat = conversation(
        "writer",
        model=[
            call("ask_critic", message_to_assistant="Fresh bread every morning"),
            say("The critic wants it shorter: Fresh bread daily."),
        ],
        models={"critic": [say("Too long; say 'daily'.")]},
    )
    chat.send("Write me a tagline for a bakery")
    assert chat.consultations == [("ask_critic", "Too long; say 'daily'.")]
    assert chat.reply == "The critic wants it shorter: Fresh bread daily."


def test_without_a_draft_the_writer_answers_in_its_own_voice(site_editor, conversation):
    """The offline model needs the draft (quoted text) to fill message_to_assistant."""
    chat = conversation("writer")
    chat.send("Ask the critic")
    assert chat.status == Run.Status.COMPLETED
    assert chat.tool_calls == [] and chat.consultations == []
    assert not Thread.objects.filter(parent=chat.thread).exists()
    assert chat.replies == [chat.reply]
    assert chat.reply.startswith("Writer (offline model): You are the Writer.")
    assert "Tools I can call: ask_critic." in chat.reply
