"""What the model sees: other assistants labelled, handoffs as notes, history policies."""

from __future__ import annotations

import pytest

from chatapp import services
from chatapp.providers.scripted import Say
from chatapp.runs import say
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pair(user, tools):
    from tests.runs.test_engine import add

    tools(add)
    first = assistant("first", name="First", tools=["add"])
    second = assistant("second", name="Second")
    return services.start_thread(first, user=user), first, second


def handoff_conversation(pair, script, **rule_fields):
    thread, first, second = pair
    rule(first, second, **rule_fields)
    script(Say("Earlier reply."))
    say(thread, "one")
    model = script(
        Say("Adding.", calls=[("add", {"a": 1, "b": 2})]),
        Say("Over to Second.", calls=[("transfer_to_second", {})]),
        Say("Second here."),
    )
    say(thread, "two")
    return model.requests[2]


def test_another_assistants_words_are_labelled_and_handoffs_are_notes(pair, script):
    request = handoff_conversation(pair, script)
    seen = [(m.role, m.content, m.name) for m in request.messages]
    assert seen == [
        ("user", "one", ""),
        ("assistant", "[First] Earlier reply.", "First"),
        ("user", "two", ""),
        ("assistant", "[First] Adding.", "First"),
        ("system", 'First called add({"a": 1, "b": 2}).', ""),
        ("system", "First's add returned: 3", ""),
        ("assistant", "[First] Over to Second.", "First"),
        ("system", "First called transfer_to_second({}).", ""),
        ("system", "First's transfer_to_second returned: Transferred to Second.", ""),
        ("system", "Handed from First to Second", ""),
    ]
    assert all(not m.tool_calls for m in request.messages)


def test_own_earlier_messages_keep_their_tool_calls(pair, script):
    thread, _, _ = pair
    script(Say("", calls=[("add", {"a": 1, "b": 1})]), Say("2."))
    say(thread, "sum")
    model = script(Say("ok"))
    say(thread, "thanks")
    messages = model.requests[0].messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[1].tool_calls[0].name == "add"
    assert messages[2].tool_call_id == messages[1].tool_calls[0].id


def test_history_none_shows_only_what_follows_the_handoff(pair, script):
    request = handoff_conversation(pair, script, history="none")
    assert [m.content for m in request.messages] == ["Handed from First to Second"]


def test_history_last_n_keeps_the_last_spoken_messages(pair, script):
    request = handoff_conversation(pair, script, history="last_n", history_last_n=2)
    assert [(m.role, m.content) for m in request.messages] == [
        # Two assistant messages in a row are one: strict chat templates want alternation.
        ("assistant", "[First] Adding.\n\n[First] Over to Second."),
        ("system", "Handed from First to Second"),
    ]


def test_an_interrupted_tool_call_gets_a_result_so_the_request_stays_valid(pair, script):
    from chatapp.models import Message

    thread, first, _ = pair
    Message.objects.create(
        thread=thread,
        role="assistant",
        assistant=first,
        tool_calls=[{"id": "c1", "name": "add", "arguments": "{}"}],
        status="incomplete",
    )
    model = script(Say("ok"))
    say(thread, "hello")
    tool_message = model.requests[0].messages[1]
    assert (tool_message.role, tool_message.tool_call_id) == ("tool", "c1")
    assert tool_message.content.startswith("Error: not run")


def test_each_message_says_its_files_read_in_one_query(user, script, every_query):
    """Every user message of a thread with files names its own, in the next turn's request;
    the files of the whole history cost one query, however many messages there are."""
    from django.core.files.base import ContentFile

    thread = services.start_thread(assistant("plain"), user=user)
    script(*[Say(f"Got {n}.") for n in range(4)])
    for name in ("a.csv", "b.csv", "c.csv"):
        say(thread, f"here is {name}", files=[ContentFile(b"x,y\n1,2\n", name=name)])
    every_query.clear()
    model = script(Say("All three."))
    say(thread, "and now?")
    users = [m.content for m in model.requests[0].messages if m.role == "user"]
    assert [u.split("(Attached: ")[1][:5] for u in users[:3]] == ["a.csv", "b.csv", "c.csv"]
    assert users[3] == "and now?"
    reads = [q for q in every_query if q.startswith('SELECT "chatapp_attachment"')]
    assert len(reads) == 1, reads
