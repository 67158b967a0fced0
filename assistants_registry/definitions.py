"""Assistants, their handoff rules and their consult rules defined as code, in an app's
`assistants.py` (a module-level `ASSISTANTS`) or in YAML files. `chatapp.definitions.sync`
writes them into the database; these classes know nothing of it.

These dataclasses are where each field of an assistant, a handoff and a consultation is
listed, once, with its type, its constraints and its default. The YAML schema, the version
snapshot, the export and the admin's forms derive from them, and a test checks that the
database models have exactly these fields with the same defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field


@dataclass(frozen=True)
class HandoffDefinition:
    target: Annotated[str, Field(min_length=1)]  # slug
    trigger: Literal["tool", "after_tool"] = "tool"
    after_tool: str = ""
    tool_name: str = ""
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    required_metadata: tuple[str, ...] = ()
    history: Literal["full", "last_n", "none"] = "full"
    history_last_n: Annotated[int, Field(ge=0)] = 6
    extra_instructions: str = ""
    respond_immediately: bool = True
    enabled: bool = True


@dataclass(frozen=True)
class ConsultDefinition:
    """The assistant may consult `specialist` through a tool (default `ask_<slug>`): the
    specialist answers on a child thread and the thread stays with the assistant."""

    specialist: Annotated[str, Field(min_length=1)]  # slug
    tool_name: str = ""
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class AssistantDefinition:
    slug: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    instructions: str = ""
    tools: tuple[str, ...] = ()
    ask_before: tuple[str, ...] = ()  # of `tools`: those that wait for the user's approval
    handoffs: tuple[HandoffDefinition, ...] = ()
    consults: tuple[ConsultDefinition, ...] = ()
    provider: str = ""
    model: str = ""
    temperature: float | None = None
    max_steps: Annotated[int, Field(ge=1)] = 8
    is_entry: bool = False
    # Where the definition came from (a module or a file), for error messages; two
    # definitions that differ only in where they came from are equal.
    origin: str = field(default="", compare=False, repr=False)


def settings_of(cls: type, *, identity: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of a definition that the database stores as they are: all but those that
    identify it or link it to other rows (`identity`) and where it came from."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in {*identity, "origin"})


# An assistant's own settings; a rule's settings besides the assistant at its other end.
ASSISTANT_SETTINGS = settings_of(AssistantDefinition, identity=("slug", "handoffs", "consults"))
HANDOFF_SETTINGS = settings_of(HandoffDefinition, identity=("target",))
CONSULT_SETTINGS = settings_of(ConsultDefinition, identity=("specialist",))


class DefinitionError(ValueError):
    """Definitions that cannot be synced: a bad file, a duplicate slug, an unknown target..."""
