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
