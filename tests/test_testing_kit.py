"""chatapp.testing, as a workflow author meets it: installed with chatapp (the pytest11
entry point), in a pytest run of its own. A failing test prints its conversation; a script
with turns left over, or one that runs out, fails the test."""

from __future__ import annotations

import pytest

from tests.processes import ROOT

AUTHORS_TESTS = """
from chatapp.testing import call, fail, say, turn
from tests.factories import assistant


def test_a_greeting(conversation):
    assistant("bot", name="Bot")
    chat = conversation("bot", model=[say("Hello!")])
    chat.send("hi")
    assert chat.reply == "Goodbye!"


def test_turns_left_over(conversation):
    assistant("bot", name="Bot")
    chat = conversation("bot", model=[say("Hello!"), say("Never said.")])
    chat.send("hi")


def test_a_script_that_runs_out(conversation):
    assistant("bot", name="Bot")
    chat = conversation("bot", model=[])
    chat.send("hi")


def test_tools_and_failures_as_the_author_scripts_them(conversation):
    assistant("bot", name="Bot", tools=["list_pages"])
    chat = conversation("bot", model=[
        turn("Looking.", call("list_pages"), call("nope")),
        fail("The model server is overloaded."),
    ])
    chat.send("which pages?")
    assert chat.tool_calls == [("list_pages", {}), ("nope", {})]
    assert [(name, is_error) for name, _, is_error in chat.tool_results] == [
        ("list_pages", False), ("nope", True)
    ]
    assert chat.status == "failed" and chat.replies == ["Looking."]
"""


@pytest.fixture
def authors_run(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'kit.sqlite3'}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_workflow=AUTHORS_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")


def test_what_an_author_sees(authors_run):
    authors_run.assert_outcomes(passed=3, failed=1, errors=2)
    out = authors_run.stdout.str()
    # A failing test prints its conversation as the terminal chat would.
    assert "FAILED test_workflow.py::test_a_greeting" in out
    section = out[out.index("chatapp conversation 1") :]
    assert "you> hi" in section and "Bot> Hello!" in section
    # Turns left over, or one too few, fail the test that wrote the script.
    assert "The script has model turns that were never used: 1 for model." in out
    assert "ERROR test_workflow.py::test_turns_left_over" in out
    assert "The script ran out: bot called the model once more than scripted." in out
    assert "ERROR test_workflow.py::test_a_script_that_runs_out" in out
    # Several calls in one turn, a tool the assistant lacks, a failing model call.
    assert "PASSED test_workflow.py::test_tools_and_failures_as_the_author_scripts_them" in out
