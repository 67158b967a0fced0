"""@tool: schemas from signatures and docstrings, validation, the context parameter, registry."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from pydantic import BaseModel

from assistants_registry.registry import DuplicateToolError, Registry, UnknownToolError
from assistants_registry.tools import ToolContext, ToolError, tool


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    number: int


@tool
def book(
    ctx: ToolContext,
    city: str,
    nights: int,
    room: Literal["single", "double"] = "single",
    colour: Colour | None = None,
    address: Address | None = None,
) -> str:
    """Book a hotel room.

    Args:
        city: Where to stay.
        nights: How many nights,
            at least one.
        room: The kind of room.

    Returns:
        A confirmation.
    """
    return f"{city}:{nights}:{room}:{colour}:{address}:{ctx.metadata.get('who')}"


def context(**metadata):
    return ToolContext(thread_id="t", user_id=1, assistant="a", run_id="r", metadata=metadata)


def test_schema_comes_from_the_signature_and_docstring():
    assert book.name == "book"
    assert book.description == "Book a hotel room."
    schema = book.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["city", "nights"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert "ctx" not in props  # the model never sees the context
    assert props["city"] == {"type": "string", "description": "Where to stay."}
    assert props["nights"] == {"type": "integer", "description": "How many nights, at least one."}
    assert props["room"] == {
        "type": "string",
        "enum": ["single", "double"],
        "default": "single",
        "description": "The kind of room.",
    }
    assert props["colour"]["anyOf"][0] == {"$ref": "#/$defs/Colour"}
    assert schema["$defs"]["Colour"]["enum"] == ["red", "blue"]
    assert schema["$defs"]["Address"]["required"] == ["street", "number"]


async def test_valid_arguments_are_converted_and_the_context_injected():
    outcome = await book.invoke(
        '{"city": "Oslo", "nights": "2", "colour": "blue",'
        ' "address": {"street": "Main", "number": 1}}',
        context(who="ada"),
        default_timeout=5,
    )
    assert not outcome.is_error
    assert outcome.output == "Oslo:2:single:Colour.BLUE:street='Main' number=1:ada"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"city": "Oslo"}', "nights: Field required"),
        (
            '{"city": "Oslo", "nights": 1, "room": "suite"}',
            "room: Input should be 'single' or 'double'",
        ),
        ('{"city": "Oslo", "nights": 1, "tip": 5}', "tip: Extra inputs are not permitted"),
        (
            '{"city": "Oslo", "nights": 1, "address": {"street": "x"}}',
            "address.number: Field required",
        ),
        ("not json", "Invalid JSON"),
    ],
)
def test_invalid_arguments_are_refused_with_what_is_wrong(arguments, message):
    with pytest.raises(ToolError, match="Invalid arguments for book") as error:
        book.validate(arguments)
    assert message in str(error.value)


async def test_async_tools_and_non_string_results():
    @tool
    async def lookup(key: str) -> dict:
        """Look a key up."""
        return {"key": key, "found": True}

    outcome = await lookup.invoke('{"key": "k"}', context(), default_timeout=5)
    assert outcome.output == '{"key": "k", "found": true}'


def test_a_decorated_tool_is_still_a_function():
    assert book(context(), "Rome", 1) == "Rome:1:single:None:None:None"


def test_tool_options_override_name_description_and_timeout():
    @tool(name="find", description="Find things.", timeout=3)
    def search(query: str) -> str:
        """Ignored."""
        return query

    assert (search.name, search.description, search.timeout) == ("find", "Find things.", 3)


def test_args_and_kwargs_cannot_be_described():
    with pytest.raises(TypeError, match="cannot be described"):

        @tool
        def anything(*args: int) -> None:
            """Nope."""


def test_registry_refuses_duplicates_and_unknown_names():
    registry = Registry()
    registry.register(book)
    with pytest.raises(DuplicateToolError, match="'book' is already registered"):
        registry.register(book)
    with pytest.raises(UnknownToolError):
        registry.get("missing")
    with pytest.raises(TypeError, match="decorate it with @tool"):
        registry.register(lambda: None)
    assert "book" in registry and registry.names() == ["book"]


def test_the_project_registry_has_the_site_editor_tools():
    from assistants_registry.registry import registry

    assert {"select_page", "set_title", "set_layout", "update_settings"} <= set(registry.names())
