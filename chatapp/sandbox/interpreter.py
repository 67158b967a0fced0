"""`run_python`: the model's code, run in the sandbox with copies of the thread's files; what it
printed comes back as the tool's result, the files it wrote to outputs/ as attachments."""

from __future__ import annotations

import asyncio

from assistants_registry.tools import ToolContext, ToolError, tool
from chatapp.files import content_type_of
from chatapp.sandbox import bubblewrap


# The sandbox keeps its own wall-time limit (CHATAPP_SANDBOX["WALL_SECONDS"]); this is a
# backstop above it.
@tool(timeout=600)
async def run_python(ctx: ToolContext, code: str) -> str:
    """Run Python code in a sandbox and get back what it printed. The chat's files are in the
    working folder under their names (open("data.csv")). Write files to outputs/ to show
    them to the user; a matplotlib figure left open is shown as a picture. numpy and
    matplotlib are installed; there is no network and nothing is kept between runs.

    Args:
        code: A complete Python program.
    """
    inputs = [
        bubblewrap.File(f.name, await asyncio.to_thread(f.read), f.content_type) for f in ctx.files
    ]
    try:
        result = await bubblewrap.run(code, inputs)
    except bubblewrap.SandboxUnavailable as exc:
        raise ToolError(str(exc)) from None
    for made in result.files:
        ctx.attach(made.name, made.data, content_type_of(made.name))
    report = describe(result)
    if not result.ok:
        raise ToolError(report)
    return report


def describe(result: bubblewrap.Result) -> str:
    """What the model reads: how it ended, what it printed, which files it made."""
    if result.problem:
        parts = [result.problem]
    elif result.exit_code == 0:
        parts = ["The code ran."]
    else:
        parts = [f"The code failed (exit code {result.exit_code})."]
    if result.stdout:
        parts.append(f"Output:\n{result.stdout.rstrip()}")
    if result.stderr:
        parts.append(f"Errors:\n{result.stderr.rstrip()}")
    if result.files:
        parts.append("Files written: " + ", ".join(f.name for f in result.files))
    elif result.ok and not result.stdout:
        parts.append("It printed nothing (print() what you want to see).")
    return "\n\n".join(parts)
