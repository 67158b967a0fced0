"""The terminal chat, in a real subprocess: Ctrl-C stops an answer like Stop in the browser,
keeping what was written; the next Ctrl-C quits without a traceback."""

from __future__ import annotations

import signal
import time

import pytest

from chatapp.models import Message, Run
from tests.factories import assistant
from tests.fake_model import fake_model_in_thread, keep_alive_forever, text
from tests.processes import Output, environment, manage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_offline(user):
    assistant("bot", name="Bot", provider="offline")
    return environment(OFFLINE_MODEL_DELAY="0.3")


@pytest.fixture
def keep_alive_server(user):
    assistant("bot", name="Bot", provider="openai")
    with fake_model_in_thread([text("Half an ", "answer"), keep_alive_forever()]) as model:
        yield environment(OPENAI_BASE_URL=model.url, OPENAI_API_KEY="k")


@pytest.mark.parametrize("model", ["slow_offline", "keep_alive_server"])
def test_ctrl_c_stops_the_answer_and_the_next_one_quits(request, model, user):
    env = request.getfixturevalue(model)
    chat = manage("chat", "bot", "--user", user.username, env=env)
    output = Output(chat)
    try:
        output.wait_for("you> ")
        chat.stdin.write("hello there\n")
        chat.stdin.flush()
        output.wait_for("Bot> ")
        chat.send_signal(signal.SIGINT)
        output.wait_for("[cancelled] Stopped.")
        output.wait_for_count("you> ", 2)  # the chat goes on

        run = Run.objects.get()
        reply = Message.objects.get(run=run, role="assistant")
        assert run.status == "cancelled" and reply.status == "incomplete" and reply.content

        chat.send_signal(signal.SIGINT)  # at the prompt: quit
        assert chat.wait(timeout=20) in (0, 130)
        assert "Traceback" not in output.text
    finally:
        chat.kill()
        chat.wait()


def test_two_quick_ctrl_c_quit_and_leave_the_thread_free(keep_alive_server, user):
    chat = manage("chat", "bot", "--user", user.username, env=keep_alive_server)
    output = Output(chat)
    try:
        output.wait_for("you> ")
        chat.stdin.write("hello there\n")
        chat.stdin.flush()
        output.wait_for("Bot> ")
        chat.send_signal(signal.SIGINT)
        time.sleep(0.3)  # two signals sent at once arrive as one: a person is slower
        chat.send_signal(signal.SIGINT)
        chat.wait(timeout=20)
        assert "Traceback" not in output.text
        assert not Run.objects.filter(status__in=Run.ACTIVE).exists()
    finally:
        chat.kill()
        chat.wait()


def test_an_answer_cut_by_the_model_says_so_in_the_terminal(user, monkeypatch):
    import io
    import sys

    from django.core.management import call_command

    from chatapp.providers import registry
    from chatapp.providers.openai import OpenAIProvider
    from tests.fake_model import finish

    with fake_model_in_thread([text("Once upon a"), finish("length")]) as model:
        provider = OpenAIProvider(base_url=model.url, api_key="k", max_retries=0)
        provider.name = "cutting"
        registry.register(provider, replace=True)
        assistant("teller", name="Teller", provider="cutting")
        monkeypatch.setattr(sys, "stdin", io.StringIO("a story\n\n"))
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("chat", "teller", "--user", user.username, stdout=out, stderr=err)
        finally:
            registry.unregister("cutting")
    assert "Teller> Once upon a [interrupted]" in out.getvalue()
    assert "[failed] The answer was cut off: the model reached its length limit." in err.getvalue()


def chat_with(slug: str, user, lines: str, monkeypatch) -> tuple[str, str]:
    import io
    import sys

    from django.core.management import call_command

    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    out, err = io.StringIO(), io.StringIO()
    call_command("chat", slug, "--user", user.username, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def publisher(site_editor, user):
    from assistants_registry.site_editor.models import Page

    assistant("publisher", name="Publisher", tools=["select_page", "update_settings"])
    Page.objects.filter(slug="about").update(settings={"published": True})
    return Page


def test_the_terminal_asks_before_a_call_that_needs_approval(publisher, user, script, monkeypatch):
    from chatapp.providers.scripted import Say

    script(
        Say("", calls=[("select_page", {"page": "about"})]),
        Say("", calls=[("update_settings", {"published": False})]),
        Say("Unpublished."),
    )
    out, _ = chat_with("publisher", user, "unpublish about\ny\n\n", monkeypatch)
    assert "⏸ update_settings waits for your approval" in out
    assert 'update_settings({"published": false}) approve? [y/N]' in out
    assert "Publisher> Unpublished." in out
    assert publisher.objects.get(slug="about").settings["published"] is False
    step = Run.objects.get().steps.get(kind="approval")
    assert (step.data["decision"], step.data["by"]) == ("approved", user.username)


def test_the_terminal_rejects_with_a_reason(publisher, user, script, monkeypatch):
    from chatapp.providers.scripted import Say

    model = script(
        Say("", calls=[("select_page", {"page": "about"})]),
        Say("", calls=[("update_settings", {"published": False})]),
        Say("Kept it published."),
    )
    out, _ = chat_with("publisher", user, "unpublish about\nn\nnot yet\n\n", monkeypatch)
    assert "reason (optional):" in out and "Publisher> Kept it published." in out
    assert publisher.objects.get(slug="about").settings["published"] is True
    assert model.requests[2].messages[-1].content.endswith("They said: not yet")


def test_at_the_end_of_input_the_run_stays_paused(publisher, user, script, monkeypatch):
    from chatapp.providers.scripted import Say

    script(
        Say("", calls=[("select_page", {"page": "about"})]),
        Say("", calls=[("update_settings", {"published": False})]),
    )
    with pytest.raises(SystemExit):
        chat_with("publisher", user, "unpublish about\n", monkeypatch)
    assert Run.objects.get().status == Run.Status.AWAITING_APPROVAL
