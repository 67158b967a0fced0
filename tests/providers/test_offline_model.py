"""The offline model: deterministic, honest, and able to call the site editor's tools."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from chatapp.providers.base import (
    ChatMessage,
    Finished,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolDefinition,
    Usage,
)
from chatapp.providers.offline import matching
from chatapp.providers.offline import model as offline
from chatapp.providers.offline.model import OfflineProvider


def tool(name: str, description: str, fields: type[BaseModel] | None = None) -> ToolDefinition:
    """A tool definition whose schema pydantic wrote, as the registry's tools have."""
    schema = fields.model_json_schema() if fields else {"type": "object", "properties": {}}
    return ToolDefinition(name, description, schema)


class SelectPage(BaseModel):
    page: str


class SetTitle(BaseModel):
    title: str


class SetBody(BaseModel):
    text: str


class SetLayout(BaseModel):
    layout: Literal["single", "sidebar", "wide"]


SITE_EDITOR_TOOLS = (
    tool(
        "select_page",
        "Open one of the site's pages for editing: checks it exists and hands the thread "
        "to the page editor.",
        SelectPage,
    ),
    tool("set_title", "Set the title of the page being edited.", SetTitle),
    tool("set_body", "Replace the body text of the page being edited.", SetBody),
    tool("set_layout", "Change the layout of the page being edited.", SetLayout),
    tool("transfer_to_welcome", "Go back to Welcome to choose another page."),
)


def request(
    *messages: ChatMessage, tools: tuple[ToolDefinition, ...] = SITE_EDITOR_TOOLS
) -> ProviderRequest:
    return ProviderRequest(
        model="offline",
        instructions="You are editing the page about. Change only what the user asks for.",
        messages=messages,
        tools=tools,
        assistant_name="Page editor",
    )


async def events_of(req: ProviderRequest, provider: Any = None) -> list[ProviderEvent]:
    return [event async for event in (provider or OfflineProvider()).stream(req)]


def text_of(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextChunk))


def only_call(events: list[ProviderEvent]) -> ToolCall:
    calls = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert len(calls) == 1, events
    return calls[0]


# --- streaming and honesty -------------------------------------------------------------------


async def test_the_same_request_streams_the_same_events() -> None:
    for message in ("hello there", "I want to edit the about page"):
        req = request(ChatMessage("user", message))
        assert await events_of(req) == await events_of(req)


async def test_different_conversations_get_different_call_ids() -> None:
    first = await events_of(request(ChatMessage("user", "use the wide layout")))
    second = await events_of(
        request(ChatMessage("user", "hi"), ChatMessage("user", "use the wide layout"))
    )
    assert only_call(first).id != only_call(second).id


async def test_text_streams_word_by_word_and_says_it_is_the_offline_model() -> None:
    req = request(ChatMessage("user", "What can you do?"))
    events = await events_of(req)
    chunks = [e.text for e in events if isinstance(e, TextChunk)]
    assert len(chunks) > 5
    assert "".join(chunks) == offline.reply_text(req)
    assert text_of(events).startswith(
        "Page editor (offline model): You are editing the page about."
    )
    assert "“What can you do?”" in text_of(events)
    assert events[-2:] == [
        Usage(prompt_tokens=len(req.instructions.split()) + 4, completion_tokens=len(chunks)),
        Finished("stop"),
    ]


async def test_without_a_user_message_it_greets() -> None:
    text = text_of(await events_of(request(tools=())))
    assert text == "Page editor (offline model): Hello! You are editing the page about."


async def test_without_an_assistant_name_it_still_says_what_it_is() -> None:
    req = ProviderRequest(model="offline", instructions="", messages=(ChatMessage("user", "hi"),))
    assert text_of(await events_of(req)) == "Offline model: You said: “hi”."


async def test_after_a_handoff_note_it_speaks_as_the_new_assistant() -> None:
    req = request(
        ChatMessage("user", "I want to edit the about page"),
        ChatMessage("system", "Handed from Welcome to Page editor; page_id=about"),
    )
    events = await events_of(req)
    assert not any(isinstance(e, ToolCallReady) for e in events)
    assert text_of(events).startswith("Page editor (offline model): You are editing the page")


# --- tools -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "name", "arguments"),
    [
        ("I want to edit the about page", "select_page", {"page": "about"}),
        ("set the title to Who we are", "set_title", {"title": "Who we are"}),
        ("Set the title to Who we are. Thanks!", "set_title", {"title": "Who we are"}),
        ('set the body to "Hello there"', "set_body", {"text": "Hello there"}),
        ("use the wide layout", "set_layout", {"layout": "wide"}),
        ("Please go back to Welcome", "transfer_to_welcome", {}),
    ],
)
async def test_it_calls_the_tool_the_user_asks_for(
    message: str, name: str, arguments: dict[str, Any]
) -> None:
    events = await events_of(request(ChatMessage("user", message)))
    call = only_call(events)
    assert (call.name, json.loads(call.arguments)) == (name, arguments)
    assert call.id.startswith("call_")
    assert events[-1] == Finished("tool_calls")
    assert isinstance(events[-2], Usage)


@pytest.mark.parametrize("message", ["hello, how are you?", "set the title"])
async def test_it_answers_in_text_when_no_tool_can_be_called(message: str) -> None:
    # "set the title" names set_title but gives no title: a required argument is missing.
    events = await events_of(request(ChatMessage("user", message)))
    assert not any(isinstance(e, ToolCallReady) for e in events)
    assert "offline model" in text_of(events)


async def test_after_a_tool_result_it_sums_it_up() -> None:
    call = ToolCall("call_1", "set_title", '{"title": "Who we are"}')
    req = request(
        ChatMessage("user", "set the title to Who we are"),
        ChatMessage("assistant", tool_calls=(call,)),
        ChatMessage(
            "tool", "Title set to “Who we are”.\nThe page was saved.", tool_call_id="call_1"
        ),
    )
    text = text_of(await events_of(req))
    assert text == "Page editor (offline model): Done: set_title → Title set to “Who we are”."


async def test_after_a_failed_tool_it_says_it_did_not_work() -> None:
    call = ToolCall("call_1", "select_page", '{"page": "nope"}')
    req = request(
        ChatMessage("user", "edit the nope page"),
        ChatMessage("assistant", tool_calls=(call,)),
        ChatMessage("tool", "Error: no page called 'nope'.", tool_call_id="call_1"),
    )
    text = text_of(await events_of(req))
    assert "did not work (select_page): no page called 'nope'." in text
    assert "offline model" in text


# --- delay -----------------------------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records the model's pauses instead of waiting: timing without a flaky clock."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        recorded.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(offline.asyncio, "sleep", sleep)
    return recorded


async def test_it_pauses_between_words_as_the_setting_says(
    settings: Any, sleeps: list[float]
) -> None:
    provider = OfflineProvider()
    settings.OFFLINE_MODEL_DELAY = 0.02  # read at call time, after the provider was built
    events = await events_of(request(ChatMessage("user", "hello")), provider)
    chunks = [e for e in events if isinstance(e, TextChunk)]
    assert sleeps == [0.02] * len(chunks)


async def test_no_delay_means_no_pauses(sleeps: list[float]) -> None:
    await events_of(request(ChatMessage("user", "hello")))
    assert sleeps == []


async def test_a_delay_given_to_the_provider_wins(settings: Any, sleeps: list[float]) -> None:
    settings.OFFLINE_MODEL_DELAY = 1.0
    await events_of(request(ChatMessage("user", "hello")), OfflineProvider(delay=0.005))
    assert set(sleeps) == {0.005}


# --- the pure pieces -------------------------------------------------------------------------


def test_tokenize_and_stem_match() -> None:
    assert matching.tokenize("Edit the About-page, please_now 2!") == [
        "edit", "the", "about", "page", "please", "now", "2",
    ]  # fmt: skip
    assert matching.stem_match("edit", "editing")
    assert matching.stem_match("pages", "page")
    assert not matching.stem_match("set", "settings")  # fewer than 4 shared characters
    assert not matching.stem_match("page", "pace")


def test_score_weighs_the_name_over_the_description() -> None:
    set_title = SITE_EDITOR_TOOLS[1]
    # set, title: 2 name words x 3; set, title, page, edited: 4 description words.
    assert (
        matching.score_tool(set_title, matching.tokenize("set the title of this page, edit")) == 10
    )
    assert matching.score_tool(set_title, matching.tokenize("good morning")) == 0


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("call it 'Our story', please", "Our story"),
        ("I'd like the title “Our story”", "Our story"),
        ("title: Our story!", "Our story"),
        ("the title is Our story\nand more", "Our story"),
        ("rename my homepage title", "homepage"),
        ("title Welcome", "Welcome"),
        ("title of the page", None),
        ("nothing here", None),
    ],
)
def test_find_string(message: str, expected: str | None) -> None:
    assert matching.find_string("title", message) == expected


def test_find_number_prefers_the_number_after_the_name() -> None:
    assert matching.find_number("width", "on page 2 set the width to 300.", integer=True) == 300
    assert matching.find_number("width", "make it 640 wide", integer=True) == 640
    assert matching.find_number("ratio", "a ratio of 1.5", integer=False) == 1.5
    assert matching.find_number("width", "make it 2.5 wide", integer=True) is None
    assert matching.find_number("width", "no numbers", integer=False) is None


def test_find_boolean_takes_the_word_nearest_the_name() -> None:
    assert matching.find_boolean("comments", "turn comments off on the about page") is False
    assert matching.find_boolean("published", "publish it") is True
    assert matching.find_boolean("published", "unpublish it") is False
    assert matching.find_boolean("published", "nothing to say") is None
    # The name is not its own answer, though "published" is a yes word.
    assert matching.find_boolean("published", "set published no") is False
    assert matching.find_boolean("published", "published: off, shown in the menu") is False


class Resize(BaseModel):
    width: int
    unit: Literal["px", "em"] | None = None
    note: str | None = None


class Nested(BaseModel):
    size: Resize


def test_optional_parameters_are_sent_only_when_found() -> None:
    schema = Resize.model_json_schema()
    assert matching.fill_arguments(schema, "width 20 em") == {"width": 20, "unit": "em"}
    assert matching.fill_arguments(schema, "set the width to 300") == {"width": 300}
    assert matching.fill_arguments(schema, "make it wider") is None  # width is required


def test_optional_numbers_and_flags_need_their_name() -> None:
    from chatapp.runs.consult import SCHEMA

    message = 'Ask the critic about "Open on Sundays, 24 hours"'
    assert matching.fill_arguments(SCHEMA, message) == {
        "message_to_assistant": "Open on Sundays, 24 hours"
    }
    named = 'ask "Is it good?" with resume on, and pass 3 previous messages'
    assert matching.fill_arguments(SCHEMA, named) == {
        "message_to_assistant": "Is it good?",
        "pass_num_previous_messages": 3,
        "resume": True,
    }


def test_parameters_behind_a_ref_cannot_be_filled() -> None:
    assert matching.fill_arguments(Nested.model_json_schema(), "size 20") is None
    resize = tool("resize", "Resize the image.", Nested)
    assert matching.choose_tool([resize], "resize to 20 px") is None


def test_ties_go_to_the_earlier_tool() -> None:
    first = tool("open_page", "Open a page.", SelectPage)
    second = tool("show_page", "Show a page.", SelectPage)
    chosen = matching.choose_tool([first, second], "the contact page")
    assert chosen is not None
    assert (chosen[0].name, chosen[1]) == ("open_page", {"page": "contact"})


def test_const_parameters_are_filled_like_an_enum() -> None:
    class Mode(BaseModel):
        mode: Literal["dark"]

    assert matching.fill_arguments(Mode.model_json_schema(), "go DARK now") == {"mode": "dark"}
    assert matching.fill_arguments(Mode.model_json_schema(), "go light") is None
