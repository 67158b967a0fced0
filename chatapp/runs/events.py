"""What a run tells its consumers, as tiny frozen dataclasses with a `type` literal.

Text events carry the message id and the character offset of their first character, so a
consumer that also read the message from the database can drop overlap and detect gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    thread_id: str
    assistant: str  # slug
    question_id: int = 0  # the user's message the run answers, for pages that show it
    question: str = ""
    client_id: str = ""  # the id the page gave that message: the page knows it arrived
    title: str = ""  # the thread's, as the run began (the first message names the thread)
    type: Literal["run.started"] = "run.started"


@dataclass(frozen=True, slots=True)
class MessageStarted:
    run_id: str
    message_id: int
    assistant: str
    assistant_name: str
    type: Literal["message.started"] = "message.started"


@dataclass(frozen=True, slots=True)
class TextDelta:
    run_id: str
    message_id: int
    offset: int
    text: str
    type: Literal["text.delta"] = "text.delta"


@dataclass(frozen=True, slots=True)
class MessageCompleted:
    run_id: str
    message_id: int
    content: str
    status: Literal["complete", "incomplete"] = "complete"
    assistant_name: str = ""
    type: Literal["message.completed"] = "message.completed"


@dataclass(frozen=True, slots=True)
class ToolCalled:
    run_id: str
    step_id: int
    call_id: str
    name: str
    arguments: str
    kind: Literal["tool", "handoff", "consult"] = "tool"
    type: Literal["tool.called"] = "tool.called"


@dataclass(frozen=True, slots=True)
class ToolResult:
    run_id: str
    step_id: int
    call_id: str
    name: str
    output: str
    is_error: bool
    kind: Literal["tool", "handoff", "consult"] = "tool"
    arguments: str = ""
    type: Literal["tool.result"] = "tool.result"


@dataclass(frozen=True, slots=True)
class Handoff:
    run_id: str
    step_id: int
    source: str
    source_name: str
    target: str
    target_name: str
    metadata: dict[str, Any] = field(default_factory=dict)  # what the handoff changed
    type: Literal["handoff"] = "handoff"


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """The run pauses: this call waits for the user to approve or reject it (step_id: its
    approval step)."""

    run_id: str
    step_id: int
    call_id: str
    name: str
    arguments: str
    assistant_name: str = ""
    type: Literal["approval.requested"] = "approval.requested"


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended — or paused, with status "awaiting_approval", after ApprovalRequested."""

    run_id: str
    status: Literal[
        "completed", "failed", "cancelled", "interrupted", "expired", "awaiting_approval"
    ]
    error: str = ""
    type: Literal["run.finished"] = "run.finished"


@dataclass(frozen=True, slots=True)
class Nested:
    """An event of a consulted specialist's run, relayed by the run that asked (step_id)."""

    run_id: str
    step_id: int
    specialist: str
    event: RunEvent
    type: Literal["nested"] = "nested"


RunEvent = (
    RunStarted
    | MessageStarted
    | TextDelta
    | MessageCompleted
    | ToolCalled
    | ToolResult
    | Handoff
    | ApprovalRequested
    | RunFinished
    | Nested
)
