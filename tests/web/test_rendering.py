"""Everything a model, a tool or staff wrote is inert in the browser."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.template import engines
from django.utils import translation
from django.utils.safestring import mark_safe

from chatapp import services
from chatapp.models import Message
from chatapp.runs import events
from chatapp.web import fragments
from chatapp.web import markdown as markdown_module
from chatapp.web.markdown import Rendered, markdown
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
    assert absent not in markdown(source)  # and as it is kept for the next time


def test_a_text_shown_again_is_not_rendered_again(monkeypatch):
    """A page's window is rendered for the page and again for its socket's first frame:
    the second time (and every later one) takes what the first rendered."""
    rendered: list[str] = []
    real = markdown_module.render

    def counting(text: str) -> str:
        rendered.append(text)
        return real(text)

    monkeypatch.setattr(markdown_module, "render", counting)
    text = f"An answer ({uuid.uuid4()}) with code:\n\n```python\nprint('hi')\n```\n{EVIL}"
    first, again = markdown(text), markdown(text)
    assert again == first and "<script" not in again and 'class="nb"' in again
    assert rendered == [text]


def test_kept_renderings_stay_within_their_budget_the_least_recently_used_going_first():
    kept = Rendered(budget=800)
    for number in range(10):  # 10 x 80 characters: the budget, exactly
        kept.keep(f"text {number:02d}".ljust(40), mark_safe("h" * 40))
    assert kept.size == 800
    assert kept.get("text 00".ljust(40)) is not None  # used: now the most recent
    kept.keep("text 10".ljust(40), mark_safe("h" * 40))
    assert kept.size == 800
    assert kept.get("text 01".ljust(40)) is None  # the least recently used went
    assert kept.get("text 00".ljust(40)) is not None
    kept.keep("x" * 101, mark_safe(""))  # over an eighth of the budget
    assert kept.get("x" * 101) is None and kept.size == 800


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


# --- code in answers -------------------------------------------------------------------------


def test_fenced_code_is_highlighted_on_the_server_and_stays_inert():
    html = markdown('```python\nprint("<script>alert(1)</script>")  # hi\n```')
    assert '<span class="nb">print</span>' in html  # Pygments' token classes
    assert '<span class="c1"># hi</span>' in html
    assert "<script" not in html and "&lt;script&gt;" in html


def test_code_in_an_unknown_language_or_none_is_plain_escaped_text():
    for fence in ("```no-such-language", "```"):
        html = markdown(f"{fence}\nx = '<b>'\n```")
        assert "<span" not in html and "x = '&lt;b&gt;'" in html


def test_only_pygments_classes_survive_the_sanitiser():
    import nh3

    from chatapp.web.highlight import TOKEN_CLASSES
    from chatapp.web.markdown import ALLOWED_TAGS

    dirty = '<span class="k evil-class" style="color:red">x</span>'
    clean = nh3.clean(dirty, tags=ALLOWED_TAGS, allowed_classes={"span": set(TOKEN_CLASSES)})
    assert clean == '<span class="k">x</span>'
    # And in Markdown, raw HTML is text: no class reaches the page at all.
    assert "<span" not in markdown('<span class="k">x</span>')


def test_the_code_colours_stylesheet_is_current():
    from pathlib import Path

    from django.conf import settings

    from chatapp.web.highlight import code_css

    committed = Path(settings.BASE_DIR, "static", "chatapp", "code.css").read_text()
    assert committed == code_css()  # else: write code_css() to static/chatapp/code.css


# --- times and what screen readers hear ------------------------------------------------------


AS_DJANGO_WRITES_IT = "{{ when|date:'c' }}|{{ when|date:'j F Y, H:i' }}|{{ when|time:'H:i' }}"
AS_CHATAPP_WRITES_IT = (
    "{% load chat %}{% with at=when|moment %}{{ at.iso }}|{{ at.long }}|{{ at.short }}{% endwith %}"
)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu"])
@pytest.mark.parametrize("language", ["en", "de"])
def test_a_moment_reads_as_djangos_date_filters_write_it(settings, zone, language):
    """A message's time is formatted once (`moment`), as three `date` filters wrote it: in the
    current time zone (daylight saving and odd offsets included) and language."""
    settings.TIME_ZONE = zone
    moments = [
        datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # Paris moves its clocks at 1:00
        datetime(2026, 3, 29, 1, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 7, 4, 9, 5, tzinfo=UTC),
    ]
    with translation.override(language):
        for when in moments:
            django_wrote = engines["django"].from_string(AS_DJANGO_WRITES_IT).render({"when": when})
            we_wrote = engines["django"].from_string(AS_CHATAPP_WRITES_IT).render({"when": when})
            assert we_wrote == django_wrote


def test_messages_show_when_they_were_sent_and_the_list_is_not_a_live_region(client, thread):
    services.send_message(thread, "hello")
    message = Message.objects.get(thread=thread)
    client.force_login(thread.owner)
    html = client.get(f"/threads/{thread.pk}/").content.decode()
    stamp = message.created_at.strftime("%Y-%m-%dT%H:%M:%S")
    assert f'<time class="msg__time" datetime="{stamp}' in html
    assert '<span class="visually-hidden">sent </span>' in html
    assert 'id="messages" class="messages" ' in html
    assert 'aria-live="polite" aria-atomic="true"' in html  # the announcer
    messages_tag = html[html.index('<div id="messages"') :].split(">", 1)[0]
    assert "aria-live" not in messages_tag  # streamed words are not read one by one


def test_a_finished_answer_and_a_handoff_are_announced_once():
    done = events.MessageCompleted("r", 7, "All **done**. " + "word " * 200, "complete", "Helper")
    html = fragments.event_fragments(done)
    assert '<div id="announcer" hx-swap-oob="innerHTML">Helper: All **done**.' in html
    said = html[html.index('id="announcer"') :].split(">", 1)[1].split("</div>")[0]
    assert len(said) <= fragments.ANNOUNCED_CHARS and said.endswith("…")
    delta = events.TextDelta("r", 7, 0, "streamed words")
    assert "announcer" not in fragments.event_fragments(delta)
