"""The run loop: the one place where a thread's assistants speak, call tools and hand off.

`execute(run_id)` is an async generator of events consumed by everything — the websocket,
the Python API, the terminal chat and the tests. It knows no HTTP and no websocket.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async as db
from django.conf import settings

from assistants_registry.registry import Registry
from assistants_registry.registry import registry as default_registry
from assistants_registry.tools import ToolContext, ToolError, ToolOutcome
from chatapp.models import Assistant, HandoffRule, Run
from chatapp.providers import get_provider
from chatapp.providers.base import ProviderError, TextChunk, ToolCall, ToolCallReady, Usage
from chatapp.runs import cancellation, consult, context, store
from chatapp.runs.events import (
    Handoff,
    MessageCompleted,
    MessageStarted,
    Nested,
    RunEvent,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCalled,
    ToolResult,
)
from chatapp.runs.handoffs import check_required, handoff_updates

logger = logging.getLogger(__name__)


class Stop(Exception):
    """Ends the run early with a status and a reason the user can read."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def execute(
    run_id: Any,
    *,
    registry: Registry = default_registry,
    depth: int = 0,
    budget: consult.Budget | None = None,
    watch: tuple[str, ...] = (),
) -> AsyncIterator[RunEvent]:
    """Run a queued run to its end, yielding what happens. Nothing is written per token.

    A consultation runs its child with `depth` + 1, the parent's step `budget`, and the
    ancestors' run ids to `watch` for a stop request.
    """
    try:
        run = await db(store.begin)(str(run_id))
    except store.RunNotStartable:
        logger.info("Run %s is not queued; not starting it", run_id)
        return
    loop = RunLoop(run, registry, depth=depth, budget=budget, watch=watch)
    yield RunStarted(str(run.pk), str(run.thread_id), run.assistant.slug)
    status, error = Run.Status.COMPLETED, ""
    try:
        async for event in loop.steps():
            yield event
    except Stop as stop:
        status, error = stop.status, stop.reason
    except cancellation.Cancelled:
        status, error = Run.Status.CANCELLED, "Stopped."
    except ProviderError as exc:
        status, error = Run.Status.FAILED, str(exc)
    except context.InstructionsError as exc:
        status, error = Run.Status.FAILED, str(exc)
    except asyncio.CancelledError:  # the task running us was cancelled: keep what we have
        await loop.close_message(complete=False)
        await db(store.finish_run)(run, Run.Status.CANCELLED, "Stopped.", loop.usage)
        cancellation.forget(run.pk)
        raise
    except Exception:
        logger.exception("Run %s crashed", run.pk)
        status, error = Run.Status.FAILED, "Something went wrong on our side; the run stopped."
    if (event := await loop.close_message(complete=False)) is not None:
        yield event
    await db(store.finish_run)(run, status, error, loop.usage)
    cancellation.forget(run.pk)
    yield RunFinished(str(run.pk), status, error)


class RunLoop:
    def __init__(
        self,
        run: Run,
        registry: Registry,
        *,
        depth: int = 0,
        budget: consult.Budget | None = None,
        watch: tuple[str, ...] = (),
    ) -> None:
        self.run, self.run_id, self.registry = run, str(run.pk), registry
        self.depth, self.budget, self.watch = depth, budget, (str(run.pk), *watch)
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        self.steps_by_assistant: Counter[int] = Counter()
        self.step_index = 0
        self.handoffs = 0
        self.message: Any = None  # the assistant message being streamed
        self.last_rule: HandoffRule | None = None
        self.text = ""

    async def steps(self) -> AsyncIterator[RunEvent]:
        while True:
            turn = await db(store.load_turn)(self.run_id)
            if await db(store.stop_requested)(self.watch) or cancellation.requested(self.run_id):
                raise Stop(Run.Status.CANCELLED, "Stopped.")
            assistant = turn.assistant
            if self.steps_by_assistant[assistant.pk] >= assistant.max_steps:
                raise Stop(
                    Run.Status.FAILED,
                    f"{assistant.name} reached its limit of "
                    f"{assistant.max_steps} steps in one run.",
                )
            if self.budget is not None and not self.budget.spend():
                raise Stop(Run.Status.FAILED, "The step budget of the consulting run is used up.")
            self.steps_by_assistant[assistant.pk] += 1
            may_consult = self.depth < settings.CHATAPP_MAX_CONSULT_DEPTH
            tools = context.assistant_tools(
                assistant, turn.rules, self.registry, turn.consults if may_consult else []
            )
            provider = get_provider(assistant.provider)
            request = context.build_request(
                turn.thread,
                assistant,
                turn.history,
                tools,
                assistant.model or provider.default_model,
            )
            calls: list[ToolCall] = []
            async for event in self.stream_message(provider.stream(request), assistant, calls):
                yield event
            if not calls:
                return
            moved = False
            async for event in self.run_tools(turn, tools, calls):
                moved = moved or isinstance(event, Handoff)
                yield event
            if moved and self.last_rule and not self.last_rule.respond_immediately:
                return

    async def stream_message(
        self, stream: AsyncIterator[Any], assistant: Assistant, calls: list[ToolCall]
    ) -> AsyncIterator[RunEvent]:
        self.message = await db(store.start_message)(self.run, assistant)
        self.text = ""
        yield MessageStarted(self.run_id, self.message.pk, assistant.slug, assistant.name)
        flushed_at = time.monotonic()
        async for chunk in cancellation.interruptible(self.run_id, stream):
            if isinstance(chunk, TextChunk) and chunk.text:
                yield TextDelta(self.run_id, self.message.pk, len(self.text), chunk.text)
                self.text += chunk.text
            elif isinstance(chunk, ToolCallReady):
                calls.append(chunk.call)
            elif isinstance(chunk, Usage):
                self.usage["prompt_tokens"] += chunk.prompt_tokens
                self.usage["completion_tokens"] += chunk.completion_tokens
            if time.monotonic() - flushed_at >= settings.CHATAPP_FLUSH_INTERVAL:
                flushed_at = time.monotonic()
                if await db(store.flush)(self.watch, self.message.pk, self.text):
                    raise Stop(Run.Status.CANCELLED, "Stopped.")
        yield await self.close_message(complete=True, calls=calls)

    async def close_message(self, *, complete: bool, calls: list[ToolCall] = ()) -> Any:  # type: ignore[assignment]
        """Persist the streamed message (partial, when the run stops early) exactly once."""
        message, self.message = self.message, None
        if message is None:
            return None
        await db(store.finish_message)(
            self.run,
            message,
            self.text,
            list(calls),
            complete=complete,
            step_index=self.next_index(),
            usage=dict(self.usage),
        )
        status = "complete" if complete else "incomplete"
        return MessageCompleted(self.run_id, message.pk, self.text, status)

    async def run_tools(
        self, turn: store.Turn, tools: context.AssistantTools, calls: list[ToolCall]
    ) -> AsyncIterator[RunEvent]:
        """Ordinary tools first, then at most one handoff: an after-tool rule or a handoff tool."""
        metadata = dict(turn.thread.metadata)
        handoff: tuple[HandoffRule, dict[str, Any], Any] | None = None
        for call in sorted(calls, key=lambda c: c.name in tools.handoffs):
            kind = tools.kind(call.name)
            step = await db(store.start_tool_step)(
                self.run, turn.assistant, call, self.next_index(), kind
            )
            yield ToolCalled(self.run_id, step.pk, call.id, call.name, call.arguments, kind)
            if kind == "consult":
                answers: list[ToolOutcome] = []
                async for event in self.consult(
                    turn, tools.consults[call.name], call, step, answers
                ):
                    yield event
                outcome, updates = answers[0], {}
            elif kind == "handoff":
                rule = tools.handoffs[call.name].rule
                outcome, updates = self.check_handoff(rule, call, metadata, handoff)
                if not outcome.is_error:
                    handoff = (rule, updates, step)  # answered when it is applied, below
                    continue
            else:
                outcome, updates = await self.call_tool(turn, tools, call, metadata)
                rule = tools.after(call.name)
                if not outcome.is_error and rule is not None and handoff is None:
                    try:
                        check_required(rule, {**metadata, **updates})
                        handoff = (rule, updates, None)
                    except ToolError as exc:
                        outcome = ToolOutcome(f"{outcome.output}\n(Not handed on: {exc})")
                if not outcome.is_error:
                    metadata.update(updates)
            await db(store.record_tool_result)(step, call, outcome, updates)
            yield ToolResult(
                self.run_id, step.pk, call.id, call.name, outcome.output, outcome.is_error, kind
            )
        if handoff is not None:
            rule, updates, step = handoff
            if self.handoffs >= settings.CHATAPP_MAX_HANDOFFS_PER_RUN:
                raise Stop(
                    Run.Status.FAILED,
                    f"Stopped after {self.handoffs} handoffs in one "
                    "run; the assistants kept passing the conversation around.",
                )
            if step is not None:
                output = store.transferred(rule.target)
                yield ToolResult(
                    self.run_id,
                    step.pk,
                    step.data["call_id"],
                    rule.tool_name,
                    output,
                    False,
                    "handoff",
                )
            yield await self.hand_off(turn, rule, updates, step, metadata)

    def check_handoff(
        self, rule: HandoffRule, call: ToolCall, metadata: dict[str, Any], earlier: Any
    ) -> tuple[ToolOutcome, dict[str, Any]]:
        try:
            if earlier is not None:
                raise ToolError("Only one handoff per turn; this one was not made.")
            updates = handoff_updates(rule, call.arguments, metadata)
        except ToolError as exc:
            return ToolOutcome(str(exc), is_error=True), {}
        return ToolOutcome(store.transferred(rule.target)), updates

    async def consult(
        self,
        turn: store.Turn,
        tool: consult.ConsultTool,
        call: ToolCall,
        step: Any,
        answers: list[ToolOutcome],
    ) -> AsyncIterator[RunEvent]:
        """Run the specialist on its child thread, relaying its events; its answer (or why
        there is none) goes into `answers`."""
        specialist = tool.rule.specialist
        try:
            arguments = consult.parse(tool.rule, call.arguments)
        except ToolError as exc:
            answers.append(ToolOutcome(str(exc), is_error=True))
            return
        assistant = turn.assistant
        budget = self.budget or consult.Budget(
            assistant.max_steps - self.steps_by_assistant[assistant.pk]
        )
        child = await db(consult.open_consultation)(self.run, tool.rule, step, arguments)
        cancellation.link(self.run_id, child.pk)
        children = execute(
            child.pk, registry=self.registry, depth=self.depth + 1, budget=budget, watch=self.watch
        )
        async for event in children:
            yield Nested(self.run_id, step.pk, specialist.name, event)
        if self.budget is None:  # a shared budget was spent directly
            self.steps_by_assistant[assistant.pk] += budget.used
        if cancellation.requested(self.run_id) or await db(store.stop_requested)(self.watch):
            raise Stop(Run.Status.CANCELLED, "Stopped.")
        status, answer, error = await db(consult.answer_of)(str(child.pk))
        if status == Run.Status.COMPLETED:
            answers.append(ToolOutcome(answer or f"{specialist.name} gave no answer."))
        else:
            reason = error or status
            answers.append(ToolOutcome(f"{specialist.name} could not answer: {reason}", True))

    async def call_tool(
        self,
        turn: store.Turn,
        tools: context.AssistantTools,
        call: ToolCall,
        metadata: dict[str, Any],
    ) -> tuple[ToolOutcome, dict[str, Any]]:
        spec = tools.ordinary.get(call.name)
        if spec is None:  # the model may only call its own assistant's tools
            return ToolOutcome(f"{turn.assistant.name} has no tool named {call.name!r}.", True), {}
        ctx = ToolContext(
            thread_id=str(turn.thread.pk),
            user_id=turn.thread.owner_id,
            assistant=turn.assistant.slug,
            run_id=self.run_id,
            metadata=copy.deepcopy(metadata),
        )
        outcome = await spec.invoke(
            call.arguments, ctx, default_timeout=settings.CHATAPP_TOOL_TIMEOUT
        )
        updates = {k: v for k, v in ctx.metadata.items() if metadata.get(k) != v}
        return outcome, updates

    async def hand_off(
        self,
        turn: store.Turn,
        rule: HandoffRule,
        updates: dict[str, Any],
        tool_step: Any,
        metadata: dict[str, Any],
    ) -> Handoff:
        self.handoffs += 1
        self.last_rule = rule
        extra = ""
        if rule.extra_instructions:
            turn.thread.metadata = {**metadata, **updates}
            extra = context.render_template(
                rule.extra_instructions,
                context.template_context(turn.thread, rule.target),
                f"extra instructions of the handoff to {rule.target.name}",
            )
        step = await db(store.apply_handoff)(
            self.run, rule, updates, self.next_index(), extra, tool_step
        )
        source, target = rule.source, rule.target
        return Handoff(
            self.run_id, step.pk, source.slug, source.name, target.slug, target.name, updates
        )

    def next_index(self) -> int:
        self.step_index += 1
        return self.step_index
