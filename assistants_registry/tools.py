"""`@tool` turns a typed Python function into a ToolSpec the models can call.

The JSON schema comes from the signature (through pydantic, which also validates the
arguments before the function runs) and the descriptions from the docstring:

    @tool
    def set_title(ctx: ToolContext, title: str) -> str:
        '''Set the title of the page being edited.

        Args:
            title: The new title.
        '''

A parameter annotated with ToolContext receives the thread's context and is never shown to
the model. Sync functions run in a worker thread, never on the event loop.

`@tool(permission="app.codename")` names the Django permission a user needs for the tool: a
user without it is not offered the tool, and a call to it is refused. A tool that needs more
for some of its arguments checks with `ctx.require(...)`.

`@tool(needs_approval=True)` makes the run pause before the tool runs until the user approves
or rejects the call; `needs_approval` may also be a function of the call's arguments (a dict)
that says whether this call needs it, e.g. only when it publishes.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from asgiref.sync import sync_to_async
from django.db import connections
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

DEFAULT_TIMEOUT = 30.0


class ToolError(Exception):
    """Raise from a tool to tell the model, in plain words, why it did not work."""


@dataclass(frozen=True)
class Permissions:
    """The Django permissions of the user a run answers ("app.codename" strings)."""

    granted: frozenset[str] = frozenset()
    everything: bool = False  # an active superuser

    def has(self, permission: str | None) -> bool:
        return permission is None or self.everything or permission in self.granted


@dataclass(frozen=True)
class ThreadFile:
    """A file of the thread, as a tool sees it: `read()` returns its bytes."""

    name: str
    content_type: str
    size: int
    read: Callable[[], bytes] = field(repr=False, compare=False)


@dataclass(frozen=True)
class OutputFile:
    """A file a tool made (`ctx.attach`): attached to its result and shown to the user."""

    name: str
    data: bytes = field(repr=False)
    content_type: str = ""  # "": from the name's extension


@dataclass
class ToolContext:
    """What a tool knows about the conversation. Changes to `metadata` are merged into the
    thread's metadata when the tool succeeds, and dropped when it fails.

    `files` are the thread's files; `attach(name, data)` adds a file to the tool's result (an
    image is shown in the conversation, any other file as a download link)."""

    thread_id: str
    user_id: int | None
    assistant: str  # slug of the assistant that called the tool
    run_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    permissions: Permissions = field(default_factory=Permissions)
    files: tuple[ThreadFile, ...] = ()
    outputs: list[OutputFile] = field(default_factory=list)

    def file(self, name: str) -> ThreadFile:
        """The thread's file called `name`, or ToolError listing the files there are."""
        for found in self.files:
            if found.name == name:
                return found
        there = ", ".join(f.name for f in self.files) or "none"
        raise ToolError(f"This chat has no file named {name!r} (its files: {there}).")

    def attach(self, name: str, data: bytes, content_type: str = "") -> None:
        self.outputs.append(OutputFile(name, bytes(data), content_type))

    def require(self, permission: str, to: str) -> None:
        """ToolError unless the user has `permission`; `to` says what for, in plain words."""
        if not self.permissions.has(permission):
            raise ToolError(
                f"You may not {to}: that needs the permission {permission!r}, which you do "
                "not have. Ask an administrator."
            )


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    output: str
    is_error: bool = False
    files: tuple[OutputFile, ...] = ()  # what the tool attached to its result


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    function: Callable[..., Any]
    arguments_model: type[BaseModel]
    context_parameter: str | None = None
    timeout: float | None = None  # None: settings.CHATAPP_TOOL_TIMEOUT
    permission: str | None = None  # the Django permission a user needs for this tool
    # Whether a call waits for the user's approval: always, or depending on its arguments.
    needs_approval: bool | Callable[[dict[str, Any]], bool] = False

    def asks_approval(self, arguments: str) -> bool:
        """Whether this call (its arguments as the model wrote them) waits for approval.
        Arguments that are not a JSON object are refused by validation before anything runs,
        so they need no approval; a failing condition asks, to be safe."""
        if not callable(self.needs_approval):
            return bool(self.needs_approval)
        try:
            value = json.loads(arguments or "{}")
        except (ValueError, RecursionError):
            return False
        if not isinstance(value, dict):
            return False
        try:
            return bool(self.needs_approval(value))
        except Exception:
            return True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def validate(self, arguments: str) -> dict[str, Any]:
        """The validated keyword arguments, or ToolError saying what is wrong."""
        try:
            model = self.arguments_model.model_validate_json(arguments or "{}")
        except ValidationError as exc:
            raise ToolError(f"Invalid arguments for {self.name}: {describe(exc)}") from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(
        self, arguments: str, context: ToolContext, default_timeout: float
    ) -> ToolOutcome:
        """Validate, run (with a time limit) and turn any failure into an error outcome."""
        try:
            kwargs = self.validate(arguments)
            if self.context_parameter:
                kwargs[self.context_parameter] = context
            limit = self.timeout or default_timeout
            if inspect.iscoroutinefunction(self.function):
                result = await asyncio.wait_for(self.function(**kwargs), limit)
            else:
                call = sync_to_async(_closing_connections(self.function), thread_sensitive=False)
                result = await asyncio.wait_for(call(**kwargs), limit)
        except ToolError as exc:
            return ToolOutcome(str(exc), is_error=True)
        except TimeoutError:
            return ToolOutcome(f"{self.name} did not finish within {limit:g} s.", is_error=True)
        except Exception as exc:
            return ToolOutcome(f"{self.name} failed: {type(exc).__name__}: {exc}", is_error=True)
        return ToolOutcome(to_text(result))


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    permission: str | None = None,
    needs_approval: bool | Callable[[dict[str, Any]], bool] = False,
) -> Any:
    """Decorator: `@tool` or `@tool(name=..., timeout=..., permission=..., needs_approval=...)`
    -> ToolSpec."""

    def build(fn: Callable[..., Any]) -> ToolSpec:
        summary, argument_docs = parse_docstring(inspect.getdoc(fn) or "")
        hints = get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        context_parameter = None
        for parameter in inspect.signature(fn).parameters.values():
            annotation = hints.get(parameter.name, Any)
            if annotation is ToolContext:
                context_parameter = parameter.name
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"Tool {fn.__name__}: *args and **kwargs cannot be described.")
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (
                annotation,
                Field(default, description=argument_docs.get(parameter.name)),
            )
        tool_name = name or fn.__name__
        model = create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        return ToolSpec(
            name=tool_name,
            description=description or summary,
            parameters=json_schema(model),
            function=fn,
            arguments_model=model,
            context_parameter=context_parameter,
            timeout=timeout,
            permission=permission,
            needs_approval=needs_approval,
        )

    return build(function) if function is not None else build


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


SECTION = re.compile(r"^(\w[\w ]*):\s*$")  # "Args:", "Returns:", ...
ARG_LINE = re.compile(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (the text before any section) and each argument's description, from a
    Google-style `Args:` section. Other sections (Returns:, Raises:) are not for the model."""
    summary: list[str] = []
    arguments: dict[str, str] = {}
    section, current = "", None
    for line in doc.splitlines():
        if header := SECTION.match(line):
            section, current = header.group(1).lower(), None
        elif not section:
            summary.append(line)
        elif section in ("args", "arguments", "parameters"):
            if match := ARG_LINE.match(line):
                current = match.group(1)
                arguments[current] = match.group(2).strip()
            elif current and line.strip():
                arguments[current] += " " + line.strip()
    return " ".join(" ".join(summary).split()), arguments


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def to_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str, ensure_ascii=False)


def _closing_connections(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run in a worker thread and close that thread's database connections afterwards, so
    tool threads never hold connections open between calls."""

    def run(**kwargs: Any) -> Any:
        try:
            return function(**kwargs)
        finally:
            connections.close_all()

    return run
