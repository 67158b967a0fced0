"""The engine's front door. Everything outside `chatapp.runs` — the web, the admin, the
commands — imports the engine from here and from nowhere deeper:

- `execute(run_id)`: run a queued run, as an async generator of `events`;
- `say` / `asay`: post a message and run the answer (the Python API); `cancel(run)`: Stop;
- the records the engine writes on messages and steps, for anyone who shows them;
- the preview of what a model receives from an assistant (the admin's preview and checks);
- `Limits`, what one run may spend.
"""

from __future__ import annotations

from chatapp.runs import events
from chatapp.runs.api import EventHandler, asay, cancel, say
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
    HandoffRecord,
    MessageStepRecord,
    ToolResultRecord,
    ToolStepRecord,
    describe_metadata,
)

__all__ = [
    "EventHandler",
    "HandoffRecord",
    "InstructionsError",
    "Limits",
    "MessageStepRecord",
    "Preview",
    "ToolResultRecord",
    "ToolStepRecord",
    "asay",
    "build_preview",
    "cancel",
    "describe_metadata",
    "events",
    "execute",
    "rule_metadata_keys",
    "sample_context",
    "sample_metadata",
    "say",
    "shut_down",
    "template_error",
]
