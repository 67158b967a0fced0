"""What the websocket sends: HTML fragments that htmx swaps into the thread page by id
(`hx-swap-oob`), for a (re)connecting page and for each run event.

A consulted specialist's events arrive wrapped in `Nested`; they render like the parent's
own, inside the consultation's block instead of the conversation.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.html import escape

from chatapp.models import Assistant, Attachment, Message, Run, Thread
from chatapp.runs import ApprovalRecord, HandoffRecord, events
from chatapp.web.page import (
    SHOWN_ERRORS,
    Approval,
    Item,
    ToolStep,
    handoff_item,
    oob,
    partial,
    side_context,
    thread_context,
)

CONVERSATION = "messages"


def connect_fragments(thread: Thread) -> str:
    """Everything that shows the thread as it is now, for a (re)connecting page."""
    return connect_state(thread)[0]


def connect_state(thread: Thread) -> tuple[str, dict[int, int]]:
    """`connect_fragments`, and how much of each streaming message they show (its length as
    stored): the page's text that follows goes on from there."""
    context = thread_context(thread)
    shown = {
        item.message.pk: len(item.message.content)
        for item in context["items"]
        if item.streaming and item.message is not None
    }
    html = "".join(
        [
            oob("messages", **context),
            oob("badge", thread=thread),
            oob("side_panel", **context),
            oob(
                "run_status",
                running=context["running"],
                awaiting=context["awaiting"],
                can_redo=context["can_redo"],
            ),
        ]
    )
    return html, shown


def event_fragments(
    event: events.RunEvent, thread: Thread | None = None, into: str = CONVERSATION
) -> str:
    """The HTML for one run event (text deltas are not rendered here: see text_fragment).

    `into` is the id of the element new items are appended to: the conversation, or the
    block of the consultation a nested event belongs to."""
    nested = into != CONVERSATION
    match event:
        case events.Nested(step_id=step_id, specialist=specialist, event=inner):
            container = f"step-s{step_id}-nested"
            if isinstance(inner, events.RunStarted | events.RunFinished):
                return consult_summary(step_id, specialist, inner)
            return event_fragments(inner, None, container)
        case events.RunStarted(question_id=question_id, question=question):
            # Every tab of the thread shows the question, not only the one that sent it.
            asked = Message(
                pk=question_id,
                role=Message.Role.USER,
                content=question,
                client_id=event.client_id or None,
                created_at=timezone.now(),
            )
            shown = append(Item("user", asked), into) if question_id else ""
            # The first message names the thread: a stand-in with the event's title, no query.
            title = oob("title", thread=Thread(title=event.title)) if event.title else ""
            return shown + title + oob("run_status", running=True)
        case events.MessageStarted(message_id=message_id, assistant_name=name):
            message = spoken(message_id, "", Message.Status.INCOMPLETE, name)
            return append(Item("assistant", message, streaming=True), into)
        case events.MessageCompleted(message_id=message_id, content=content, status=status):
            if not content and status == "complete":  # only tool calls: their steps stand for it
                return f'<div id="msg-{message_id}" hx-swap-oob="delete"></div>'
            message = spoken(message_id, content, status, event.assistant_name)
            told = "" if nested else announcement(f"{event.assistant_name}: {content}")
            return oob("item", item=Item("assistant", message)) + told
        case events.ToolCalled(step_id=step_id, name=name, arguments=arguments, kind=kind):
            item_kind = "consult" if kind == "consult" else "tool"
            return append(Item(item_kind, step=ToolStep(f"s{step_id}", name, arguments)), into)
        case events.ToolResult(step_id=step_id, output=output, is_error=is_error, kind="consult"):
            step = ToolStep(f"s{step_id}", "", "")
            step.answered(output, is_error)
            return oob("consult_answer", step=step) + (_side(thread) if not nested else "")
        case events.ToolResult(step_id=step_id, name=name, output=output, is_error=is_error):
            step = ToolStep(f"s{step_id}", name, event.arguments)
            step.answered(output, is_error)
            if thread is not None and not nested:
                step.files = made_by(thread, event)
            return oob("item", item=Item("tool", step=step)) + (_side(thread) if not nested else "")
        case events.Handoff(source_name=source, target_name=target, metadata=metadata):
            handoff = HandoffRecord(source_name=source, target_name=target, metadata=metadata)
            banner = append(handoff_item(handoff), into)
            if nested or thread is None:
                return banner
            banner += announcement(f"{target} answers now, after {source}.")
            side = _side(thread)  # reloads the thread: its assistant has changed
            return banner + oob("badge", thread=thread) + side
        case events.ApprovalRequested(step_id=step_id, call_id=call_id, name=name):
            record = ApprovalRecord(call_id=call_id, name=name, arguments=event.arguments)
            approval = Approval(step_id, record, event.assistant_name, waiting=True)
            asks = announcement(f"{event.assistant_name or 'The assistant'} asks before {name}.")
            return append(Item("approval", approval=approval), into) + asks
        case events.RunFinished(status=Run.Status.AWAITING_APPROVAL):
            return oob("run_status", running=True, awaiting=True)
        case events.RunFinished(status=status, error=error):
            shown = error if status in SHOWN_ERRORS else ""
            banner = append(Item("error", text=shown), into) if shown else ""
            return banner + oob("run_status", running=False, can_redo=True)
    return ""


def consult_summary(step_id: int, specialist: str, event: events.RunEvent) -> str:
    if isinstance(event, events.RunStarted):
        text = f"Asking {specialist}…"
    elif event.status == Run.Status.COMPLETED:
        text = f"Asked {specialist}"
    else:
        text = f"Asked {specialist} — {event.status}"
    return oob("consult_summary", key=f"s{step_id}", text=text)


def append(item: Item, into: str = CONVERSATION) -> str:
    return partial("append", {"item": item, "into": into})


def spoken(message_id: int, content: str, status: str, assistant_name: str) -> Message:
    """An assistant's message as the page needs it, built from the event: no query."""
    return Message(
        pk=message_id,
        role=Message.Role.ASSISTANT,
        content=content,
        status=status,
        assistant=Assistant(name=assistant_name),
        created_at=timezone.now(),
    )


ANNOUNCED_CHARS = 300


def announcement(text: str) -> str:
    """What screen readers hear, politely, once: a finished answer (its start), a handoff, a
    question for the user — never each streamed word."""
    text = " ".join(text.split())
    if len(text) > ANNOUNCED_CHARS:
        text = text[: ANNOUNCED_CHARS - 1] + "…"
    return partial("announce", {"text": text})


def needs_database(event: events.RunEvent) -> bool:
    """Only what changes the side panels (a tool's result, a handoff) reads the database;
    every other fragment is rendered from the event alone, without waiting for a thread."""
    while isinstance(event, events.Nested):
        if isinstance(event.event, events.RunStarted | events.RunFinished):
            return False
        event = event.event
    return isinstance(event, events.ToolResult | events.Handoff)


def made_by(thread: Thread, event: events.ToolResult) -> list[Attachment]:
    """The files a tool call attached to its result."""
    return list(
        Attachment.objects.filter(
            thread=thread, message__run_id=event.run_id, message__tool_call_id=event.call_id
        )
    )


def _side(thread: Thread | None) -> str:
    if thread is None:
        return ""
    thread.refresh_from_db(fields=["metadata", "current_assistant"])
    thread.current_assistant  # noqa: B018 - load the new assistant now, not while rendering
    return oob("side_panel", **side_context(thread))


def text_fragment(message_id: int, text: str) -> str:
    """Escaped text appended to a streaming message. The text is a batch of deltas.

    Built here, not by a template: it is the frame sent many times a second to every page.
    `escape` makes the model's text inert, as the templates' autoescaping does."""
    return f'<div id="msg-{int(message_id)}-body" hx-swap-oob="beforeend">{escape(text)}</div>'


def notice(text: str) -> str:
    """A plain-words notice under the input (a refused message, a malformed frame)."""
    return partial("notice", {"text": text})
