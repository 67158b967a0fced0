"""What the engine writes into `Message.data` and `RunStep.data`, as typed records.

`runs/store.py` is their one writer; the context builder, the thread page and the admin's run
timeline read them back through `from_data`, never by string keys. `from_data` fills a missing
key with its default and ignores keys it does not know, so rows written by an older version
still read.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Self


def describe_metadata(metadata: dict[str, Any]) -> str:
    """`page_id=about, mode=edit`, for handoff notes and banners."""
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in metadata.items()
    )


def code_argument(arguments: str) -> str:
    """The code of a call whose one argument is `code` (run_python), to show as code rather
    than as JSON; "" for any other call."""
    try:
        value = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        return ""
    if isinstance(value, dict) and list(value) == ["code"] and isinstance(value["code"], str):
        return value["code"]
    return ""


class Record:
    """to_data / from_data for the frozen dataclasses below."""

    def to_data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> Self:
        data = data or {}
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class HandoffRecord(Record):
    """A handoff: written on its event message (what the next assistant's context needs) and
    on its run step (the trace), the same record in both places."""

    source: str = ""  # slug
    source_name: str = ""
    target: str = ""  # slug
    target_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)  # what the handoff wrote
    tool: str = ""  # the rule's tool name
    trigger: Literal["tool", "after_tool"] = "tool"
    rule_id: int | None = None
    history: Literal["full", "last_n", "none"] = "full"  # what the target sees of before
    last_n: int = 6
    extra_instructions: str = ""  # rendered, appended to the target's instructions
    kind: Literal["handoff"] = "handoff"  # tells a handoff's event message from others

    @property
    def facts(self) -> str:
        return describe_metadata(self.metadata)

    @property
    def note(self) -> str:
        """The system note the next assistants read: "Handed from A to B; page_id=about"."""
        note = f"Handed from {self.source_name} to {self.target_name}"
        return f"{note}; {self.facts}" if self.metadata else note

    @staticmethod
    def is_one(data: dict[str, Any] | None) -> bool:
        return isinstance(data, dict) and data.get("kind") == "handoff"


@dataclass(frozen=True)
class ToolResultRecord(Record):
    """On a tool message: which tool answered, whether it failed, and for a consultation who
    was asked."""

    name: str = ""
    is_error: bool = False
    consult: bool = False
    specialist: str = ""  # the specialist's name, for a consultation


@dataclass(frozen=True)
class ToolStepRecord(Record):
    """A tool call or a consultation in the trace: the call, then its result."""

    call_id: str = ""
    name: str = ""
    arguments: str = ""  # JSON text, as the model wrote it
    output: str | None = None  # None until the tool has answered
    is_error: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)  # what the tool wrote
    # A consultation: the specialist and the child thread and run that answered.
    specialist: str = ""
    specialist_name: str = ""
    child_thread: str = ""
    child_run: str = ""
    resumed: bool = False

    def answered(self, output: str, is_error: bool, metadata: dict[str, Any]) -> Self:
        return dataclasses.replace(self, output=output, is_error=is_error, metadata=metadata)


@dataclass(frozen=True)
class MessageStepRecord(Record):
    """An assistant's message in the trace: which message, how many tool calls, the tokens of
    the run so far and the version of the assistant that spoke."""

    message_id: int | None = None
    tool_calls: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    version: int | None = None


@dataclass(frozen=True)
class ApprovalRecord(Record):
    """A tool call put to the user before it runs (on an approval step), and their decision:
    who decided, when, and for a rejection why. The run pauses until every call of its turn
    is decided."""

    call_id: str = ""
    name: str = ""
    arguments: str = ""  # JSON text, as the model wrote it
    message_id: int | None = None  # the assistant's message that made the call
    decision: Literal["pending", "approved", "rejected"] = "pending"
    reason: str = ""  # a rejection's, given to the model
    by: str = ""  # the username of who decided
    by_id: int | None = None
    decided_at: str = ""  # ISO 8601

    @property
    def pending(self) -> bool:
        return self.decision == "pending"

    def decided(self, approved: bool, *, by: Any, reason: str, at: str) -> Self:
        return dataclasses.replace(
            self,
            decision="approved" if approved else "rejected",
            reason=reason,
            by=by.get_username() if by is not None else "",
            by_id=by.pk if by is not None else None,
            decided_at=at,
        )

    @property
    def rejection(self) -> str:
        """What the model is told about a rejected call."""
        said = f" They said: {self.reason}" if self.reason else ""
        return f"The user rejected this call to {self.name}; it was not run.{said}"
