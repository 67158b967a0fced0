"""The engine's front door. Everything outside `chatapp.runs` — the web, the admin, the
commands — imports the engine from here and from nowhere deeper:

- `execute(run_id)`: run a queued run, as an async generator of `events`;
- `say` / `asay`: post a message and run the answer (the Python API); `cancel(run)`: Stop;
- `pending(run)`, `approve` / `reject` (`adecide`): a paused run's tool calls, decided;
  `decide` records a decision for a face that runs the rest itself;
- the records the engine writes on messages and steps, for anyone who shows them;
- the preview of what a model receives from an assistant (the admin's preview and checks);
- `Limits`, what one run may spend.
"""

from __future__ import annotations

from chatapp.runs import events
from chatapp.runs.api import (
    EventHandler,
    adecide,
    approve,
    asay,
    attach_all,
    cancel,
    pending,
    reject,
    say,
)
from chatapp.runs.cancellation import shut_down
from chatapp.runs.context import InstructionsError
from chatapp.runs.engine import execute
from chatapp.runs.limits import Limits
from chatapp.runs.preview import (
    Preview,
    build_preview,
    rule_metadata_keys,
    sample_context,
    sample_metadata,
    template_error,
)
from chatapp.runs.records import (
    ApprovalRecord,
    HandoffRecord,
    MessageStepRecord,
    ToolResultRecord,
    ToolStepRecord,
    code_argument,
    describe_metadata,
)
from chatapp.runs.store import Decided, DecisionRefused, decide, pending_approvals

__all__ = [
    "ApprovalRecord",
    "Decided",
    "DecisionRefused",
    "EventHandler",
    "HandoffRecord",
    "InstructionsError",
    "Limits",
    "MessageStepRecord",
    "Preview",
    "ToolResultRecord",
    "ToolStepRecord",
    "adecide",
    "approve",
    "asay",
    "attach_all",
    "build_preview",
    "cancel",
    "code_argument",
    "decide",
    "describe_metadata",
    "events",
    "execute",
    "pending",
    "pending_approvals",
    "reject",
    "rule_metadata_keys",
    "sample_context",
    "sample_metadata",
    "say",
    "shut_down",
    "template_error",
]
