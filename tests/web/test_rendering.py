"""Everything a model, a tool or staff wrote is inert in the browser."""

from __future__ import annotations

import pytest

from chatapp import services
from chatapp.models import Message
from chatapp.runs import events
from chatapp.web import fragments
from chatapp.web.markdown import markdown
from tests.factories import assistant

pytestmark = pytest.mark.django_db

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)"><iframe src="//evil"></iframe>'


@pytest.mark.parametrize(
    ("source", "absent"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src="x" onerror="alert(1)">', "<img"),
        ("![tracking pixel](https://evil.example/p.png)", "<img"),
        ("[click](javascript:alert(1))", 'href="javascript'),
        ("[data](data:text/html;base64,PHNjcmlwdD4=)", 'href="data'),
        ('<a href="https://x" onclick="alert(1)">x</a>', '<a href="https://x" onclick'),
        ("<style>body{display:none}</style>", "<style"),
    ],
)
def test_markdown_output_is_inert(source, absent):
    assert absent not in markdown(source)


def test_markdown_still_formats_and_links_safely():
    html = markdown("**bold** and `code` and [docs](https://example.com)")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html


@pytest.fixture
def thread(user):
    evil_bot = assistant("evil", name=f"Bot {EVIL}", description=EVIL)
    return services.start_thread(evil_bot, user=user, title=EVIL)


def test_staff_written_names_and_model_text_are_escaped_on_the_page(thread):
    Message.objects.create(thread=thread, role="user", content=EVIL)
    Message.objects.create(
        thread=thread,
        role="assistant",
        assistant=thread.current_assistant,
        content=EVIL,
        tool_calls=[{"id": "c", "name": EVIL, "arguments": EVIL}],
    )
    Message.objects.create(
        thread=thread,
        role="tool",
        tool_call_id="c",
        content=EVIL,
        assistant=thread.current_assistant,
        data={"name": "x"},
    )
    thread.metadata = {"page_id": EVIL}
    thread.save()
    html = fragments.connect_fragments(thread)
    assert "<script>" not in html and "<img" not in html and "<iframe" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_live_fragments_are_escaped(thread):
    run_id = "r"
    rendered = [
        fragments.text_fragment(1, EVIL),
        fragments.event_fragments(events.ToolCalled(run_id, 1, "c", EVIL, EVIL)),
        fragments.event_fragments(events.Handoff(run_id, 1, "a", EVIL, "b", EVIL, {"k": EVIL})),
        fragments.event_fragments(
            events.Nested(run_id, 1, EVIL, events.RunStarted(run_id, "t", "x"))
        ),
        fragments.event_fragments(
            events.ToolResult(run_id, 1, "c", EVIL, EVIL, is_error=False, kind="consult")
        ),
        fragments.event_fragments(events.RunFinished(run_id, "failed", EVIL)),
        fragments.notice(EVIL),
    ]
    for html in rendered:
        assert "<script>" not in html and "<img" not in html, html
