"""The Writer drafts short copy and consults the Critic before answering.

A consultation, not a handoff: the Critic answers on a child thread, its answer comes back to
the Writer as the result of `ask_critic`, and the conversation stays with the Writer.
"""

from __future__ import annotations

from assistants_registry.definitions import AssistantDefinition, ConsultDefinition

WRITER = AssistantDefinition(
    slug="writer",
    name="Writer",
    description="Writes short copy: taglines, headlines, blurbs — and asks the Critic first.",
    instructions=(
        "You are the Writer. Draft the short copy the user asks for: a tagline, a headline or "
        "a blurb. Before you answer, show your draft to the Critic with ask_critic, then give "
        "the user your final copy, improved by what the Critic said."
    ),
    is_entry=True,
    consults=(ConsultDefinition("critic"),),
)

CRITIC = AssistantDefinition(
    slug="critic",
    name="Critic",
    description="Reviews a draft: what works, and what to change.",
    instructions=(
        "You are the Critic. Judge the draft in two sentences: what works, and what to change."
    ),
)

ASSISTANTS = (WRITER, CRITIC)
