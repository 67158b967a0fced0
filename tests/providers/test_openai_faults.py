"""The OpenAI provider against a model server that misbehaves after its response headers:
timeouts are retried while nothing was streamed, reported in plain words otherwise, and no
error shown to users names the server or its credentials."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from io import StringIO

import pytest
from django.core.management import call_command

from chatapp.providers.base import (
    ChatMessage,
    Finished,
    Progress,
    ProviderError,
    ProviderRequest,
    TextChunk,
    ToolCall,
)
from chatapp.providers.openai import OpenAIProvider, redacted
from tests.fake_model import (
    FakeModel,
    done,
    finish,
    hang,
    head,
    sleep,
    text,
    tool_arguments,
    tool_call,
)

REQUEST = ProviderRequest("gpt-test", "Be brief.", (ChatMessage("user", "hi"),))


@pytest.fixture
async def serve() -> AsyncIterator:
    started: list[FakeModel] = []

    async def start(*scripts: list) -> FakeModel:
        model = FakeModel(*scripts)
        await model.start()
        started.append(model)
        return model

    yield start
    for model in started:
        await model.close()


def provider_for(model: FakeModel, **options: object) -> OpenAIProvider:
    return OpenAIProvider(base_url=model.url, api_key="k", **{"max_retries": 0, **options})


async def collect(provider: OpenAIProvider) -> list:
    return [event async for event in provider.stream(REQUEST)]


async def test_a_timeout_after_the_headers_with_nothing_streamed_is_tried_again(serve):
    model = await serve([hang()], [text("Hello"), finish(), done()])
    events = await collect(provider_for(model, timeout=0.3, max_retries=1))
    assert events == [TextChunk("Hello"), Finished("stop")]
    assert len(model.requests) == 2


async def test_a_timeout_after_the_headers_says_what_happened(serve):
    model = await serve([hang()])
    with pytest.raises(ProviderError) as caught:
        await collect(provider_for(model, timeout=0.3))
    assert str(caught.value) == "The model server stopped sending the answer for more than 0.3 s."
    assert caught.value.detail.startswith(f"{model.url}: ReadTimeout while streaming")


async def test_a_timeout_after_some_text_is_not_tried_again(serve):
    model = await serve([text("Hel"), hang()], [text("Hello"), finish(), done()])
    seen = []
    with pytest.raises(ProviderError, match="stopped sending the answer"):
        async for event in provider_for(model, timeout=0.3, max_retries=2).stream(REQUEST):
            seen.append(event)
    assert seen == [TextChunk("Hel")] and len(model.requests) == 1


async def test_a_broken_connection_before_any_text_is_tried_again(serve):
    model = await serve([], [text("Hi"), finish(), done()])  # headers, then hang up
    events = await collect(provider_for(model, max_retries=1))
    assert events == [TextChunk("Hi"), Finished("stop")]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_credentials_in_the_url_reach_neither_users_nor_the_log(serve, caplog, level):
    """Nor the server's log at INFO, where Daphne puts it, or at DEBUG: the HTTP client logs
    each request with its whole URL, so the project's LOGGING keeps the client's loggers to
    warnings."""
    caplog.set_level(level)
    model = await serve([text("Hi"), finish(), done()], [head(500, {"error": {"message": "boom"}})])
    url = model.url.replace("http://", "http://someone:s3cret@") + "?api-key=s3cret"
    provider = OpenAIProvider(base_url=url, api_key="k", max_retries=0)
    assert await collect(provider) == [TextChunk("Hi"), Finished("stop")]
    with pytest.raises(ProviderError) as caught:
        await collect(provider)
    assert str(caught.value) == "The model server answered 500: boom"
    assert "s3cret" not in caught.value.detail and "someone" not in caught.value.detail
    assert caught.value.detail == f"{model.url} answered 500: boom"
    assert "s3cret" not in caplog.text and "someone" not in caplog.text
    assert redacted("https://u:p@[::1]:8443/v1/?k=v#x") == "https://[::1]:8443/v1"


def test_the_status_at_start_names_the_model_server_without_its_credentials(settings):
    """`make run` and `make serve` print it where the server's log goes."""
    settings.CHATAPP_DEFAULT_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = "https://someone:s3cret@models.example:8443/v1?api-key=s3cret"
    out = StringIO()
    call_command("provider_status", stdout=out)
    said = out.getvalue()
    assert "through https://models.example:8443/v1." in said
    assert "s3cret" not in said and "someone" not in said


async def test_pieces_of_a_slow_tool_call_say_the_answer_is_alive(serve):
    model = await serve(
        [
            tool_call("call_1", "set_title", '{"title": '),
            sleep(1.1),
            tool_arguments('"Hi"}'),
            finish("tool_calls"),
            done(),
        ]
    )
    events = await collect(provider_for(model))
    assert events[0] == Progress()
    assert events[1].call == ToolCall("call_1", "set_title", '{"title": "Hi"}')
