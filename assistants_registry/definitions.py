"""Assistants, their handoff rules and their consult rules defined as code, in an app's
`assistants.py` (a module-level `ASSISTANTS`) or in YAML files. `chatapp.definitions.sync`
writes them into the database; these classes know nothing of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class HandoffDefinition:
    target: str  # slug
    trigger: Literal["tool", "after_tool"] = "tool"
    after_tool: str = ""
    tool_name: str = ""
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    required_metadata: tuple[str, ...] = ()
    history: Literal["full", "last_n", "none"] = "full"
    history_last_n: int = 6
    extra_instructions: str = ""
    respond_immediately: bool = True
    enabled: bool = True


@dataclass(frozen=True)
class ConsultDefinition:
    """The assistant may consult `specialist` through a tool (default `ask_<slug>`): the
    specialist answers on a child thread and the thread stays with the assistant."""

    specialist: str  # slug
    tool_name: str = ""
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class AssistantDefinition:
    slug: str
    name: str
    description: str = ""
    instructions: str = ""
    tools: tuple[str, ...] = ()
    handoffs: tuple[HandoffDefinition, ...] = ()
    consults: tuple[ConsultDefinition, ...] = ()
    provider: str = ""
    model: str = ""
    temperature: float | None = None
    max_steps: int = 8
    is_entry: bool = False
    # Where the definition came from (a module or a file), for error messages; two
    # definitions that differ only in where they came from are equal.
    origin: str = field(default="", compare=False, repr=False)


class DefinitionError(ValueError):
    """Definitions that cannot be synced: a bad file, a duplicate slug, an unknown target..."""
