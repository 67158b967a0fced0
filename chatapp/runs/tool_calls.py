"""The tool steps of a model turn: ordinary tools, consultations and at most one handoff.

A mixin of the run loop (engine.RunLoop), kept apart so each file reads on its own; the loop
fills in `child_events` (how a consulted specialist's run is executed) and `next_index`.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async as db
from django.conf import settings

from assistants_registry.registry import Registry
from assistants_registry.tools import ToolContext, ToolError, ToolOutcome
from chatapp.models import HandoffRule, Run
from chatapp.providers.base import ToolCall
from chatapp.runs import cancellation, consult, context, store
from chatapp.runs.events import Handoff, Nested, RunEvent, ToolCalled, ToolResult
from chatapp.runs.handoffs import check_required, handoff_updates


class Stop(Exception):
    """Ends the run early with a status and a reason the user can read."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class ToolCalls:
    run: Run
    run_id: str
    registry: Registry
    budget: consult.Budget | None
    watch: tuple[str, ...]
    steps_by_assistant: Any
    handoffs: int
    last_rule: HandoffRule | None

    def child_events(self, run_id: Any, budget: consult.Budget) -> AsyncIterator[RunEvent]:
        raise NotImplementedError

    def next_index(self) -> int:
        raise NotImplementedError

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
                self.run_id,
                step.pk,
                call.id,
                call.name,
                outcome.output,
                outcome.is_error,
                kind,
                call.arguments,
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
                    step.data["arguments"],
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
        async for event in self.child_events(child.pk, budget):
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
