"""A run's events as the terminal chat prints them — one line each — for the chat command
and for chatapp.testing, which prints a failed test's conversation the same way."""

from __future__ import annotations

from chatapp.runs import describe_metadata, events


def line(event: events.RunEvent) -> str | None:
    """The line for one event; None for events that print nothing (text deltas, starts)."""
    match event:
        case events.MessageCompleted(content=content, status=status) if content:
            cut = " [interrupted]" if status == "incomplete" else ""
            return f"{event.assistant_name or 'Assistant'}> {content}{cut}"
        case events.ToolCalled(name=name, arguments=arguments):
            return f"  → {name}({arguments})"
        case events.ToolResult(output=output, is_error=is_error):
            return f"  {'✗' if is_error else '←'} {output}"
        case events.Handoff(source_name=source, target_name=target, metadata=facts):
            return f"  ⇢ {source} → {target}" + (f" · {describe_metadata(facts)}" if facts else "")
        case events.ApprovalRequested(name=name):
            return f"  ⏸ {name} waits for your approval"
        case events.RunFinished(status=status, error=error) if error:
            return f"[{status}] {error}"
        case events.Nested(specialist=specialist, event=inner):
            said = line(inner)
            return f"  │ {specialist}: {said.strip()}" if said else None
    return None
