"""The whole product in a real browser: Debian's Chromium driven by Playwright against a live
Daphne server with websockets. These tests do not skip: without Chromium they fail (`make
test` and .ci/run install it first); `-m "not browser"` leaves them out."""

from __future__ import annotations

import io
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Page, WebSocketRoute, expect, sync_playwright

from assistants_registry.site_editor.models import Page as SitePage
from chatapp.models import Message, Run, Thread
from tests.factories import SITE_EDITOR, grant

pytestmark = pytest.mark.browser

# The live server is a fork of this process. asgiref's one sync thread, if earlier tests
# started it, does not survive a fork: give the child a fresh executor, or every database
# call of the server waits forever on a thread that is not there.
os.register_at_fork(
    after_in_child=lambda: setattr(
        SyncToAsync, "single_thread_executor", ThreadPoolExecutor(max_workers=1)
    )
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parents[2] / "test-results" / "browser"
# Chromium's background services try to reach Google; this machine has no network for them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@override_settings(
    CHATAPP_DEFAULT_PROVIDER="offline",
    OPENAI_API_KEY="",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
)
class BrowserTestCase(ChannelsLiveServerTestCase):
    """A live Daphne (its own process, its settings fixed when it starts) and Chromium."""

    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls) -> None:
        # Chromium first: when it cannot start, nothing else has been started, and the class
        # cleanups (run by unittest and pytest even when setUpClass fails) stop Playwright, so
        # its event loop never outlives this class to break the tests that follow.
        # Sync Playwright runs an event loop in this thread; the ORM calls of the test
        # itself are still plain synchronous calls.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        cls.addClassCleanup(os.environ.pop, "DJANGO_ALLOW_ASYNC_UNSAFE", None)
        cls.playwright = sync_playwright().start()
        cls.addClassCleanup(cls.playwright.stop)
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cls.addClassCleanup(cls.browser.close)
        super().setUpClass()

    def setUp(self) -> None:
        call_command("seed_demo", stdout=io.StringIO())
        demo = get_user_model().objects.create_user("demo", password="demo-pass-1")
        grant(demo, *SITE_EDITOR)  # as ensure_demo_user does
        OUTPUT.mkdir(parents=True, exist_ok=True)

    def tearDown(self) -> None:
        """Before the tables are flushed: a test may end on a Stop while the server's process
        still writes the run's end, and on PostgreSQL flushing meanwhile can deadlock with it
        (seen in CI). Wait, a bounded while, until no run is being worked on."""
        deadline = time.monotonic() + 20
        while Run.objects.filter(status__in=Run.WORKING).exists():
            if time.monotonic() > deadline:
                raise AssertionError("A run was still being worked on 20 s after the test.")
            time.sleep(0.05)
        super().tearDown()

    def open_page(self, width: int = 1280, height: int = 860, **options: object) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height}, **options)
        self.addCleanup(context.close)
        page = context.new_page()
        self.console_errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        return page

    def log_in(self, page: Page) -> None:
        page.goto(f"{self.live_server_url}/login/")
        page.get_by_label("Username").fill("demo")
        page.get_by_label("Password").fill("demo-pass-1")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Your chats")).to_be_visible()

    def send(self, page: Page, text: str) -> None:
        box = page.locator("#composer-text")
        expect(box).to_be_enabled()
        box.fill(text)
        box.press("Enter")

    def start_chat(self, page: Page, assistant: str = "Welcome") -> None:
        self.log_in(page)
        page.get_by_label(assistant).check()
        page.get_by_role("button", name="Start chat").click()
        expect(page.locator("#assistant-badge")).to_have_text(assistant)


@override_settings(OFFLINE_MODEL_DELAY=0.01)
class SiteEditorInTheBrowser(BrowserTestCase):
    def test_edit_a_page_through_a_handoff(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        expect(page.locator("#empty-state")).to_contain_text("Say hello to Welcome")
        box = page.locator("#composer-text")
        expect(box).to_be_enabled()
        box.fill("line one")
        box.press("Shift+Enter")  # a new line, not a send
        box.press_sequentially("line two")
        expect(box).to_have_value("line one\nline two")
        expect(page.locator(".msg--user")).to_have_count(0)

        self.send(page, "I want to edit the about page")
        expect(page.locator("#thread-title")).to_have_text("I want to edit the about page")
        banner = page.locator(".handoff-banner")
        expect(banner).to_have_text("Welcome → Page editor · page_id=about")
        expect(page.locator("#assistant-badge")).to_have_text("Page editor")
        expect(page.locator(".metadata-panel")).to_contain_text("page_id")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")

        self.send(page, "set the title to Who we are")
        expect(page.locator(".page-preview__title")).to_have_text("Who we are")
        expect(page.locator(".tool-step").last).to_contain_text("set_title")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        expect(page.locator("#composer-text")).to_be_enabled()
        expect(page.locator("#composer-text")).to_be_focused()  # ready for the next message
        self.assertEqual(SitePage.objects.get(slug="about").title, "Who we are")
        page.screenshot(path=str(OUTPUT / "thread.png"), full_page=True)

        # The same page on a phone: readable, nothing wider than the screen.
        phone = self.open_page(width=375, height=780)
        self.log_in(phone)
        phone.goto(page.url)
        expect(phone.locator(".handoff-banner")).to_be_visible()
        width = phone.evaluate("document.documentElement.scrollWidth")
        self.assertLessEqual(width, 375)
        phone.screenshot(path=str(OUTPUT / "thread-phone.png"), full_page=True)
        self.assertEqual(self.console_errors, [])

    def test_a_consultation_streams_inside_its_block(self) -> None:
        page = self.open_page()
        self.start_chat(page, "Writer")
        self.send(page, 'Ask the critic about "Fresh bread every morning"')
        block = page.locator(".consult")
        expect(block.locator(".consult__summary")).to_have_text("Asked Critic")
        expect(block.locator(".msg--assistant .msg__name")).to_have_text("Critic")
        expect(block).to_contain_text("Critic (offline model)")
        writer_reply = page.locator("#messages > .msg--assistant").last
        expect(writer_reply).to_contain_text("Writer (offline model): Done: ask_critic")
        expect(page.locator("#assistant-badge")).to_have_text("Writer")  # it stayed
        self.assertEqual(self.console_errors, [])
        page.screenshot(path=str(OUTPUT / "consult.png"), full_page=True)


@override_settings(OFFLINE_MODEL_DELAY=0.3)  # slow enough to press Stop halfway
class StopInTheBrowser(BrowserTestCase):
    def test_stop_keeps_the_partial_answer(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        self.send(page, "hello there")
        stop = page.get_by_role("button", name="Stop")
        expect(stop).to_be_visible()
        stop.click()
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        expect(page.locator(".msg--incomplete")).to_be_visible()
        expect(page.locator("#composer-text")).to_be_enabled()
        self.assertEqual(self.console_errors, [])
        page.screenshot(path=str(OUTPUT / "stopped.png"), full_page=True)


@override_settings(OFFLINE_MODEL_DELAY=0.01)
class FaultsInTheBrowser(BrowserTestCase):
    def test_a_message_sent_as_the_socket_drops_is_sent_again_once(self) -> None:
        page = self.open_page()
        dropped: list[str] = []

        def route(socket: WebSocketRoute) -> None:
            server = socket.connect_to_server()

            def from_page(frame: str | bytes) -> None:
                if not dropped and '"message"' in str(frame):
                    dropped.append(str(frame))
                    # The server restarts (1012): the frame never reached it.
                    socket.close(code=1012, reason="restart")
                    return
                server.send(frame)

            socket.on_message(from_page)

        page.route_web_socket(re.compile(r".*/ws/threads/.*"), route)
        self.start_chat(page)
        self.send(page, "hello after a drop")
        expect(page.locator(".msg--user .msg__body")).to_have_text("hello after a drop")
        expect(page.locator("#composer-text")).to_have_value("")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        expect(page.locator("#composer-text")).to_be_focused()  # back after the reconnect
        self.assertEqual(len(dropped), 1)
        self.assertEqual(
            list(Message.objects.filter(role="user").values_list("content", flat=True)),
            ["hello after a drop"],
        )
        self.assertEqual(self.console_errors, [])

    def test_a_long_conversation_opens_and_scrolls_back_to_its_start(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        thread = Thread.objects.get()
        for turn in range(60):
            Message.objects.create(
                thread=thread, role="user", content=f"Q{turn:02d} " + "q" * 20_000
            )
            Message.objects.create(
                thread=thread,
                role="assistant",
                assistant=thread.current_assistant,
                content=f"A{turn:02d} " + "a" * 20_000,
            )
        page.reload()
        expect(page.locator("#messages")).to_contain_text("A59")
        expect(page.locator("#messages")).not_to_contain_text("Q00")
        expect(page.locator("#composer-text")).to_be_enabled()  # the socket stays open
        for _ in range(20):
            if page.locator("#messages").get_by_text("Q00", exact=False).count():
                break
            page.locator("#messages").evaluate("element => element.scrollTop = 0")
            page.wait_for_timeout(300)
        expect(page.locator(".msg--user").first).to_contain_text("Q00")
        self.assertEqual(page.locator(".msg--user").count(), 60)
        self.assertEqual(self.console_errors, [])


class SecurityInTheBrowser(BrowserTestCase):
    def test_logging_out_in_another_tab_signs_this_page_out(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        other = page.context.new_page()  # the same browser: the same session cookie
        other.goto(f"{self.live_server_url}/")
        other.get_by_role("button", name="Log out").click()
        expect(page.locator("#notice")).to_contain_text("You are signed out")
        expect(page.locator("#composer-text")).to_be_disabled()
        page.wait_for_timeout(1500)  # no reconnecting: the notice stays
        expect(page.locator("#notice")).to_contain_text("You are signed out")
        self.assertEqual(self.console_errors, [])


@override_settings(OFFLINE_MODEL_DELAY=0.01)
class ApprovalInTheBrowser(BrowserTestCase):
    def test_publishing_waits_for_approve_or_reject(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        self.send(page, "I want to edit the about page")
        expect(page.locator("#assistant-badge")).to_have_text("Page editor")

        self.send(page, "update settings: published no")
        card = page.locator(".approval--waiting")
        expect(card).to_contain_text("Page editor wants to run update_settings")
        expect(card.locator(".approval__args")).to_contain_text('"published": false')
        expect(page.locator("#run-status")).to_contain_text("Waiting for you to approve")
        expect(page.locator("#composer-text")).to_be_disabled()
        page.screenshot(path=str(OUTPUT / "approval.png"), full_page=True)
        card.get_by_label("Why not? (optional)").fill("not before Monday")
        card.get_by_role("button", name="Reject").click()
        expect(page.locator(".approval--rejected")).to_contain_text(
            "Rejected by demo: “not before Monday”"
        )
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        expect(page.locator(".tool-step").last).to_contain_text("update_settings — failed")
        self.assertIs(SitePage.objects.get(slug="about").settings["published"], True)

        self.send(page, "update settings: published no")
        page.locator(".approval--waiting").get_by_role("button", name="Approve").click()
        expect(page.locator(".approval").last).to_contain_text("Approved by demo")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        expect(page.locator("#composer-text")).to_be_enabled()
        self.assertIs(SitePage.objects.get(slug="about").settings["published"], False)
        self.assertEqual(self.console_errors, [])


@override_settings(OFFLINE_MODEL_DELAY=0.01)
class RetryAndEditInTheBrowser(BrowserTestCase):
    def test_edit_the_last_message_then_retry_the_answer(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        self.send(page, "helo there")
        expect(page.locator(".msg--assistant")).to_contain_text("You said: “helo there”")
        page.get_by_role("button", name="Edit last message").click()
        box = page.locator("#composer-text")
        expect(box).to_have_value("helo there")
        expect(page.locator("#notice")).to_contain_text("Editing your last message")
        box.fill("hello there")
        box.press("Enter")
        expect(page.locator(".msg--user")).to_have_count(1)
        expect(page.locator(".msg--user .msg__body")).to_have_text("hello there")
        expect(page.locator("#thread-title")).to_have_text("hello there")  # named after it
        expect(page.locator(".msg--assistant")).to_contain_text("You said: “hello there”")
        expect(box).to_have_value("")
        expect(page.locator("#composer-type")).to_have_value("message")  # editing is over

        answer = page.locator(".msg--assistant")
        first_id = answer.get_attribute("id")
        page.get_by_role("button", name="Retry answer").click()
        expect(answer).not_to_have_attribute("id", first_id)  # a new answer took its place
        expect(answer).to_have_count(1)
        expect(answer).to_contain_text("You said: “hello there”")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        replaced = Message.objects.filter(status=Message.Status.REPLACED)
        self.assertEqual(
            sorted(replaced.values_list("role", flat=True)),
            [
                "assistant",
                "assistant",
                "user",
            ],
        )
        page.screenshot(path=str(OUTPUT / "retried.png"), full_page=True)

        # Escape leaves editing without sending anything.
        page.get_by_role("button", name="Edit last message").click()
        box.press("Escape")
        expect(box).to_have_value("")
        expect(page.locator("#composer-type")).to_have_value("message")
        self.assertEqual(self.console_errors, [])


SALES_CSV = b"month,units\nJan,3\nFeb,5\nMar,4\nApr,7\n"
PLOT_CODE = (
    "import csv, matplotlib.pyplot as plt; rows = list(csv.DictReader(open('sales.csv'))); "
    "plt.bar([r['month'] for r in rows], [int(r['units']) for r in rows], color='#2457c5'); "
    "plt.title('Units sold per month'); print(sum(int(r['units']) for r in rows), 'units in all')"
)


@override_settings(OFFLINE_MODEL_DELAY=0.01)
class FilesInTheBrowser(BrowserTestCase):
    def test_attach_a_csv_and_get_a_plot_in_the_chat(self) -> None:
        page = self.open_page(height=1250)  # tall enough for the README's screenshot
        self.start_chat(page, "Data analyst")
        page.get_by_role("button", name="Attach files").focus()  # reachable by keyboard
        page.locator("#file-input").set_input_files(
            files=[{"name": "sales.csv", "mimeType": "text/csv", "buffer": SALES_CSV}]
        )
        chip = page.locator("#pending-files .file-chip")
        expect(chip).to_contain_text("sales.csv")
        expect(page.locator("#side-panel .files-panel")).to_contain_text("sales.csv")

        self.send(page, f"Plot the units per month `{PLOT_CODE}`")
        figure = page.locator(".tool-step-wrap img")
        expect(figure).to_be_visible(timeout=20_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('.tool-step-wrap img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        expect(chip).to_have_count(0)  # sent with the message
        expect(page.locator(".msg--user .file-link")).to_have_text("sales.csv")
        expect(page.locator(".tool-step-wrap summary").last).to_contain_text("run_python")
        expect(page.locator(".msg--assistant").last).to_contain_text("Done: run_python")
        expect(page.locator("#side-panel .files-panel")).to_contain_text("figure-1.png")
        self.assertEqual(self.console_errors, [])
        page.locator(".tool-step-wrap summary").last.click()  # the code and what it printed
        expect(page.locator(".tool-step__result").last).to_contain_text("19 units in all")
        page.screenshot(path=str(OUTPUT / "data-analyst.png"), full_page=True)

    def test_a_dropped_file_waits_and_a_refused_one_says_why(self) -> None:
        page = self.open_page()
        self.start_chat(page, "Data analyst")

        def drop(name: str, content: str) -> None:
            transfer = page.evaluate_handle(
                "([name, content]) => { const t = new DataTransfer();"
                " t.items.add(new File([content], name)); return t; }",
                [name, content],
            )
            page.dispatch_event("#messages", "drop", {"dataTransfer": transfer})

        drop("notes.txt", "some notes")
        chip = page.locator("#pending-files .file-chip")
        expect(chip).to_contain_text("notes.txt")
        drop("tool.exe", "MZ")
        expect(page.locator("#notice")).to_contain_text(
            "tool.exe: files of this type cannot be attached"
        )
        expect(chip).to_have_count(1)
        page.get_by_role("button", name="Do not send notes.txt").click()
        expect(chip).to_have_count(0)  # not sent; still a file of the chat
        expect(page.locator("#side-panel .files-panel")).to_contain_text("notes.txt")
        refused = "Failed to load resource: the server responded with a status of 422"
        self.assertEqual([e for e in self.console_errors if not e.startswith(refused)], [])


# Every element with text of its own, visible: its colour against the backgrounds beneath it
# (composited), with WCAG's thresholds (4.5:1, 3:1 for large text). Disabled controls and
# placeholders are exempt, as WCAG says.
CONTRAST_FAILURES = """() => {
  const parse = (c) => {
    const srgb = c.match(/color\\(srgb ([^)]+)\\)/);  // what color-mix() computes to
    const m = srgb || c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    const scale = srgb ? 255 : 1;
    return { r: p[0] * scale, g: p[1] * scale, b: p[2] * scale, a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, base) => ({
    r: top.r * top.a + base.r * (1 - top.a),
    g: top.g * top.a + base.g * (1 - top.a),
    b: top.b * top.a + base.b * (1 - top.a),
  });
  const lum = ({ r, g, b }) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let base = { r: 255, g: 255, b: 255 };
    for (let i = layers.length - 1; i >= 0; i--) base = over(layers[i], base);
    return base;
  };
  const failures = [];
  for (const el of document.querySelectorAll("body *")) {
    const text = Array.from(el.childNodes)
      .filter((n) => n.nodeType === 3).map((n) => n.textContent).join("").trim();
    if (!text || el.closest(".visually-hidden, [hidden], :disabled, script, style")) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === "hidden" || box.width === 0 || box.height === 0) continue;
    let transparent = false;
    for (let e = el; e; e = e.parentElement) {
      if (parseFloat(getComputedStyle(e).opacity) === 0) transparent = true;
    }
    if (transparent) continue;
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && parseInt(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const what = `${el.tagName.toLowerCase()}.${el.className} "${text.slice(0, 30)}"`;
      failures.push(`${what} ${ratio.toFixed(2)}`);
    }
  }
  return failures;
}"""

TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"

CODE_ANSWER = (
    "Here is a loop:\n\n```python\nfor n in range(3):\n    print(n)  # counts\n```\n\n"
    "Run it with `python loop.py`."
)


@override_settings(OFFLINE_MODEL_DELAY=0.01)
class ChatPageInTheBrowser(BrowserTestCase):
    def chat_with_code(self, page: Page) -> Thread:
        """A chat of the demo user's with a handoff and tool steps (real, through the offline
        model) and an answer holding code, as a model would write it."""
        self.start_chat(page)
        self.send(page, "I want to edit the about page")
        expect(page.locator("#assistant-badge")).to_have_text("Page editor")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        thread = Thread.objects.get(title="I want to edit the about page")
        Message.objects.create(
            thread=thread,
            role="assistant",
            assistant=thread.current_assistant,
            content=CODE_ANSWER,
        )
        # The socket's first frame shows the thread again, replacing the conversation: wait
        # for it, or a click may land on a button it is about to replace (seen in CI).
        with page.expect_websocket() as opened:
            page.reload()
        opened.value.wait_for_event("framereceived")
        return thread

    def test_light_and_dark_follow_the_system_with_aa_contrast(self) -> None:
        self.chat_with_code(self.open_page(color_scheme="light"))
        thread = Thread.objects.get(title="I want to edit the about page")
        thread_url = f"{self.live_server_url}/threads/{thread.pk}/"
        for scheme, body in (("light", "rgb(245, 246, 248)"), ("dark", "rgb(14, 17, 23)")):
            # Reduced motion: colours are measured as they settle, not halfway through a fade.
            login = self.open_page(color_scheme=scheme, reduced_motion="reduce")
            login.goto(f"{self.live_server_url}/login/")
            self.assertEqual(login.evaluate(CONTRAST_FAILURES), [], f"{scheme}: login page")
            page = self.open_page(color_scheme=scheme, reduced_motion="reduce")
            self.log_in(page)
            self.assertEqual(page.evaluate(CONTRAST_FAILURES), [], f"{scheme}: chat list")
            page.goto(thread_url)
            expect(page.locator(".code-block .copy-button")).to_have_count(1)
            expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
            # Connected (the input unlocked), and two frames later: colours have settled.
            expect(page.locator("#composer-text")).to_be_enabled()
            page.evaluate(TWO_FRAMES)
            self.assertEqual(page.evaluate("getComputedStyle(document.body).backgroundColor"), body)
            self.assertEqual(page.evaluate(CONTRAST_FAILURES), [], f"{scheme}: thread page")
            page.screenshot(path=str(OUTPUT / f"thread-{scheme}.png"))
        self.assertEqual(self.console_errors, [])

    def test_code_is_highlighted_and_copied_and_times_show_on_hover(self) -> None:
        page = self.open_page(permissions=["clipboard-read", "clipboard-write"])
        self.chat_with_code(page)
        answer = page.locator(".msg--assistant").last
        expect(answer.locator("pre span.k")).to_have_text("for")  # Pygments, on the server
        expect(answer.locator("pre span.c1")).to_have_text("# counts")
        answer.locator(".code-block .copy-button").click()
        expect(answer.locator(".code-block .copy-button")).to_have_text("Copied")
        clipboard = page.evaluate("navigator.clipboard.readText()")
        self.assertEqual(clipboard.strip(), "for n in range(3):\n    print(n)  # counts")
        answer.locator(".msg__actions .copy-button").click()
        clipboard = page.evaluate("navigator.clipboard.readText()")
        self.assertTrue(clipboard.startswith("Here is a loop:"), clipboard)
        self.assertIn("Run it with python loop.py.", clipboard)
        time = answer.locator(".msg__time")
        page.mouse.move(0, 0)
        page.locator("#composer-text").focus()  # not the copy button, inside the answer
        expect(time).to_have_css("opacity", "0")
        answer.hover()
        expect(time).to_have_css("opacity", "1")
        self.assertRegex(time.get_attribute("datetime") or "", r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(self.console_errors, [])

    def test_the_list_of_chats_searches_switches_and_updates_live(self) -> None:
        page = self.open_page()
        self.chat_with_code(page)
        first = page.url
        page.get_by_role("link", name="New chat").click()
        page.get_by_label("Writer").check()
        page.get_by_role("button", name="Start chat").click()
        chats = page.get_by_role("navigation", name="Your chats")
        current = chats.locator('[aria-current="page"]')
        expect(current).to_contain_text("New chat")
        self.send(page, "A tagline for a bakery")
        expect(current).to_contain_text("A tagline for a bakery")  # its title, live
        expect(chats.locator(".chat-list__group").first).to_have_text("Today")
        expect(chats.locator(".chat-list__item")).to_have_count(2)
        chats.get_by_label("Search your chats").fill("about page")
        expect(chats.locator(".chat-list__item")).to_have_count(1)
        expect(chats.locator(".chat-list__item")).to_contain_text("Page editor")
        chats.get_by_label("Search your chats").fill("python loop")  # in what was said
        expect(chats.locator(".chat-list__item")).to_have_count(1)
        chats.locator(".chat-list__item").click()
        self.assertEqual(page.url, first)
        self.assertEqual(self.console_errors, [])

        phone = self.open_page(width=375, height=780)
        self.log_in(phone)
        phone.goto(first)
        toggle = phone.get_by_role("button", name="Chats")
        drawer = phone.get_by_role("navigation", name="Your chats")
        expect(drawer).to_be_hidden()
        toggle.click()
        expect(drawer).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(phone.get_by_label("Search your chats")).to_be_focused()
        phone.keyboard.press("Escape")
        expect(drawer).to_be_hidden()
        expect(toggle).to_be_focused()
        self.assertLessEqual(phone.evaluate("document.documentElement.scrollWidth"), 375)

    def test_times_are_shown_in_the_readers_time_zone(self) -> None:
        page = self.open_page(timezone_id="Asia/Kolkata", locale="en-GB")  # UTC+05:30
        self.start_chat(page)
        self.send(page, "hello there")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        page.reload()
        message = Message.objects.get(role="user")
        local = message.created_at + timedelta(hours=5, minutes=30)
        expect(page.locator(".msg--user .msg__time")).to_have_text(f"sent {local:%H:%M}")
        # In the list of chats too (today's chat: a time of day).
        updated = Thread.objects.get().updated_at + timedelta(hours=5, minutes=30)
        expect(page.locator(".chat-list__meta time").first).to_have_text(f"{updated:%H:%M}")

    def test_the_answer_is_announced_once_not_word_by_word(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        expect(page.locator("#messages")).not_to_have_attribute("aria-live", "polite")
        self.send(page, "hello there")
        announcer = page.locator("#announcer")
        expect(announcer).to_contain_text("Welcome: Welcome (offline model): ")
        expect(announcer).to_have_attribute("aria-live", "polite")


@override_settings(OFFLINE_MODEL_DELAY=0.25)  # an answer slow enough to act during it
class KeyboardAndScrollingInTheBrowser(BrowserTestCase):
    def test_focus_goes_to_stop_while_answering_and_back_to_the_input(self) -> None:
        page = self.open_page()
        self.start_chat(page)
        self.send(page, "hello there, tell me everything")
        stop = page.get_by_role("button", name="Stop")
        expect(stop).to_be_focused()  # Enter or Space stops it
        page.keyboard.press("Enter")
        expect(page.locator("#run-status")).to_have_attribute("data-running", "false")
        expect(page.locator("#composer-text")).to_be_focused()
        self.assertEqual(self.console_errors, [])

    def test_the_view_follows_the_answer_only_from_the_bottom(self) -> None:
        page = self.open_page(height=500)
        self.start_chat(page)
        thread = Thread.objects.get(owner__username="demo")
        for number in range(15):
            Message.objects.create(thread=thread, role="user", content=f"Earlier question {number}")
        page.reload()
        self.send(page, "hello there, tell me everything you can")
        jump = page.get_by_role("button", name="Jump to the latest ↓")
        expect(page.locator(".msg--streaming")).to_be_visible()
        page.locator("#messages").evaluate("m => { m.scrollTop = 0; }")
        expect(jump).to_be_visible()  # more text came, and the view stayed
        self.assertEqual(page.locator("#messages").evaluate("m => m.scrollTop"), 0)
        jump.click()
        at_bottom = "m => m.scrollHeight - m.scrollTop - m.clientHeight < 48"
        self.assertTrue(page.locator("#messages").evaluate(at_bottom))
        expect(jump).to_be_hidden()
        page.get_by_role("button", name="Stop").click()
