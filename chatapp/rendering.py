"""From messages and run events to HTML: the thread page and the fragments the websocket
swaps into it (`hx-swap-oob`).

Everything a model, a tool or staff wrote is made inert here: Markdown is parsed with raw
HTML off and the result sanitised with nh3 (no images: no tracking pixels, no data exfil by
URL); everything else is autoescaped by the templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nh3
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from chatapp.models import Message, Run, Thread
from chatapp.runs import events
from chatapp.runs.handoffs import describe_metadata

THREAD_TEMPLATE = "chat/thread.html"
MARKDOWN = MarkdownIt("js-default")  # raw HTML in the source is shown as text, not parsed
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def markdown(text: str) -> SafeString:
    html = MARKDOWN.render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)


@dataclass
class ToolStep:
    """One tool call with its result, as the page shows it."""

    key: str  # the step id when live, the call id from history: unique on the page
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False

    @property
    def running(self) -> bool:
        return self.result is None


@dataclass
class Item:
    kind: str  # "user" | "assistant" | "tool" | "handoff" | "error"
    message: Message | None = None
    streaming: bool = False
    step: ToolStep | None = None
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def timeline(thread: Thread) -> list[Item]:
    """The page's items from the thread's history, in two queries."""
    messages = list(thread.messages.select_related("assistant").order_by("id"))
    failed = {
        run.pk: run.error
        for run in thread.runs.filter(status__in=[Run.Status.FAILED, Run.Status.EXPIRED])
    }
    active = thread.runs.filter(status__in=Run.ACTIVE).values_list("pk", flat=True).first()
    results = {m.tool_call_id: m for m in messages if m.role == Message.Role.TOOL}
    items: list[Item] = []
    shown_errors: set[Any] = set()
    for position, message in enumerate(messages):
        if message.role == Message.Role.USER:
            items.append(Item("user", message))
        elif message.role == Message.Role.ASSISTANT:
            streaming = (
                active is not None and message.run_id == active and message.status == "incomplete"
            )
            stopped_silent = message.status == "incomplete" and not message.tool_calls
            if message.content or streaming or stopped_silent:
                items.append(Item("assistant", message, streaming=streaming))
            for call in message.tool_calls:
                result = results.get(call["id"])
                step = ToolStep(call["id"], call["name"], call["arguments"])
                if result is not None:
                    step.result, step.is_error = result.content, result.data.get("is_error", False)
                items.append(Item("tool", step=step))
        elif message.role == Message.Role.EVENT and message.data.get("kind") == "handoff":
            items.append(handoff_item(message.data, message.content))
        last_of_run = (
            position + 1 == len(messages) or messages[position + 1].run_id != message.run_id
        )
        if last_of_run and message.run_id in failed and message.run_id not in shown_errors:
            shown_errors.add(message.run_id)
            items.append(Item("error", text=failed[message.run_id]))
    return items


def handoff_item(data: dict[str, Any], fallback: str = "") -> Item:
    return Item(
        "handoff",
        text=fallback,
        extra={
            "source": data.get("source_name") or data.get("source", ""),
            "target": data.get("target_name") or data.get("target", ""),
            "facts": describe_metadata(data.get("metadata") or {}),
        },
    )


def side_panels(thread: Thread) -> list[SafeString]:
    """Extra panels beside the conversation (the site editor's page preview), from
    settings.CHATAPP_THREAD_PANELS: callables that take the thread and return HTML or ""."""
    panels = []
    for path in settings.CHATAPP_THREAD_PANELS:
        html = import_string(path)(thread)
        if html:
            panels.append(html)
    return panels


def thread_context(thread: Thread) -> dict[str, Any]:
    active = thread.runs.filter(status__in=Run.ACTIVE).exists()
    return {
        "thread": thread,
        "items": timeline(thread),
        "running": active,
        "panels": side_panels(thread),
    }


def partial(name: str, context: dict[str, Any]) -> str:
    return render_to_string(f"{THREAD_TEMPLATE}#{name}", context)


def oob(name: str, swap: str = "outerHTML", **context: Any) -> str:
    return partial(name, {"oob": swap, **context})


# --- what the websocket sends -------------------------------------------------------------


def connect_fragments(thread: Thread) -> str:
    """Everything that shows the thread as it is now, for a (re)connecting page."""
    context = thread_context(thread)
    return "".join(
        [
            oob("messages", **context),
            oob("badge", thread=thread),
            oob("side_panel", **context),
            oob("run_status", running=context["running"]),
        ]
    )


def event_fragments(event: events.RunEvent, thread: Thread | None = None) -> str:
    """The HTML for one run event (text deltas are not rendered here: see text_fragment)."""
    match event:
        case events.RunStarted(run_id=run_id):
            # Every tab of the thread shows the question, not only the one that sent it.
            asked = Message.objects.filter(run_id=run_id, role=Message.Role.USER).first()
            shown = append(Item("user", asked)) if asked else ""
            title = oob("title", thread=thread) if thread else ""  # the first message names it
            return shown + title + oob("run_status", running=True)
        case events.MessageStarted(message_id=message_id):
            message = Message.objects.select_related("assistant").get(pk=message_id)
            return append(Item("assistant", message, streaming=True))
        case events.MessageCompleted(message_id=message_id, content=content, status=status):
            if not content and status == "complete":  # only tool calls: their steps stand for it
                return f'<div id="msg-{message_id}" hx-swap-oob="delete"></div>'
            message = Message.objects.select_related("assistant").get(pk=message_id)
            return oob("item", item=Item("assistant", message))
        case events.ToolCalled(step_id=step_id, name=name, arguments=arguments):
            return append(Item("tool", step=ToolStep(f"s{step_id}", name, arguments)))
        case events.ToolResult(step_id=step_id, name=name, output=output, is_error=is_error):
            step = ToolStep(f"s{step_id}", name, "", output, is_error)
            step.arguments = _arguments_of(step_id)
            return oob("item", item=Item("tool", step=step)) + _side(thread)
        case events.Handoff(source_name=source, target_name=target, metadata=metadata):
            data = {"source_name": source, "target_name": target, "metadata": metadata}
            side = _side(thread)  # reloads the thread: its assistant has changed
            return (
                append(handoff_item(data)) + (oob("badge", thread=thread) if thread else "") + side
            )
        case events.RunFinished(status=status, error=error):
            shown = error if status in (Run.Status.FAILED, Run.Status.EXPIRED) else ""
            return (append(Item("error", text=shown)) if shown else "") + oob(
                "run_status", running=False
            )
    return ""


def append(item: Item) -> str:
    return partial("append", {"item": item})


def _arguments_of(step_id: int) -> str:
    from chatapp.models import RunStep

    step = RunStep.objects.filter(pk=step_id).values_list("data", flat=True).first() or {}
    return step.get("arguments", "")


def _side(thread: Thread | None) -> str:
    if thread is None:
        return ""
    thread.refresh_from_db(fields=["metadata", "current_assistant"])
    thread.current_assistant  # noqa: B018 - load the new assistant now, not while rendering
    return oob("side_panel", thread=thread, panels=side_panels(thread))


def text_fragment(message_id: int, text: str) -> str:
    """Escaped text appended to a streaming message. The text is a batch of deltas."""
    return partial("text", {"message_id": message_id, "text": text})


def notice(text: str) -> str:
    """A plain-words notice under the input (a refused message, a malformed frame)."""
    return partial("notice", {"text": text})
