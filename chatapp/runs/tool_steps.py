"""The tool steps of a model turn: ordinary tools, consultations and at most one handoff.

A collaborator of the run loop (engine.RunLoop): it is given what it works with — the run,
its limits, its step counter — and how to run a consulted specialist's run (`run_child`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from assistants_registry.tools import ToolContext, ToolError, ToolOutcome
from chatapp import files
from chatapp.db import db
from chatapp.models import HandoffRule, Run, RunStep
from chatapp.providers.base import ToolCall
from chatapp.runs import cancellation, consult, context, store, turns
from chatapp.runs.events import Handoff, Nested, RunEvent, ToolCalled, ToolResult
from chatapp.runs.handoffs import check_required, handoff_updates
from chatapp.runs.limits import Budget, Limits, StepCounter, Stop
from chatapp.runs.records import ApprovalRecord, ToolStepRecord

ChildRunner = Callable[[Any, Budget], AsyncIterator[RunEvent]]
PendingHandoff = tuple[HandoffRule, dict[str, Any], RunStep | None]


def approved(decision: ApprovalRecord | None) -> bool:
    return decision is not None and decision.decision == "approved"


def not_approved(call: ToolCall, decision: ApprovalRecord | None) -> ToolOutcome:
    if decision is not None and decision.decision == "rejected":
        return ToolOutcome(decision.rejection, is_error=True)
    return ToolOutcome(
        f"{call.name} needs the user's approval, which was not given here: it was not run.",
        is_error=True,
    )


class ToolSteps:
    def __init__(
        self,
        run: Run,
        limits: Limits,
        steps: StepCounter,
        *,
        watch: tuple[str, ...],
        next_index: Callable[[], int],
        run_child: ChildRunner,
    ) -> None:
        self.run, self.run_id, self.limits, self.steps = run, str(run.pk), limits, steps
        self.watch, self.next_index, self.run_child = watch, next_index, run_child
        self.handoffs = 0
        self.last_rule: HandoffRule | None = None  # the rule of the latest handoff

    async def run_tools(
        self,
        turn: turns.Turn,
        tools: context.AssistantTools,
        calls: list[ToolCall],
        decisions: dict[str, ApprovalRecord] | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Ordinary tools first, then at most one handoff: an after-tool rule or a handoff tool.
        A call that needs the user's approval runs only if `decisions` says it was approved."""
        decisions = decisions or {}
        metadata = dict(turn.thread.metadata)
        handoff: PendingHandoff | None = None
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
            elif tools.needs_approval(call) and not approved(decisions.get(call.id)):
                outcome, updates = not_approved(call, decisions.get(call.id)), {}
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
            async for event in self.hand_off(turn, *handoff, metadata):
                yield event

    def check_handoff(
        self,
        rule: HandoffRule,
        call: ToolCall,
        metadata: dict[str, Any],
        earlier: PendingHandoff | None,
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
        turn: turns.Turn,
        tool: consult.ConsultTool,
        call: ToolCall,
        step: RunStep,
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
        budget = self.steps.for_consultation(turn.assistant)
        question = await db(consult.question_for)(str(turn.thread.pk), arguments)
        child = await db(store.open_consultation)(
            self.run, tool.rule, step, question=question, resume=arguments.resume
        )
        cancellation.link(self.run_id, child.pk)
        async for event in self.run_child(child.pk, budget):
            yield Nested(self.run_id, step.pk, specialist.name, event)
        self.steps.settle(turn.assistant, budget)
        if cancellation.requested(self.run_id) or await db(turns.stop_requested)(self.watch):
            raise Stop(Run.Status.CANCELLED, "Stopped.")
        status, answer, error = await db(turns.answer_of)(str(child.pk))
        if status == Run.Status.COMPLETED:
            answers.append(ToolOutcome(answer or f"{specialist.name} gave no answer."))
        else:
            reason = error or status
            answers.append(ToolOutcome(f"{specialist.name} could not answer: {reason}", True))

    async def call_tool(
        self,
        turn: turns.Turn,
        tools: context.AssistantTools,
        call: ToolCall,
        metadata: dict[str, Any],
    ) -> tuple[ToolOutcome, dict[str, Any]]:
        spec = tools.ordinary.get(call.name)
        if (withheld := tools.withheld.get(call.name)) is not None:
            return ToolOutcome(
                f"{call.name} needs the permission {withheld.permission!r}, which the user "
                "does not have: it was not run. Ask an administrator.",
                True,
            ), {}
        if spec is None:  # the model may only call its own assistant's tools
            return ToolOutcome(f"{turn.assistant.name} has no tool named {call.name!r}.", True), {}
        ctx = ToolContext(
            thread_id=str(turn.thread.pk),
            user_id=turn.thread.owner_id,
            assistant=turn.assistant.slug,
            run_id=self.run_id,
            metadata=copy.deepcopy(metadata),
            permissions=turn.permissions,
            files=await db(files.thread_files)(turn.thread.pk),
        )
        outcome = await spec.invoke(call.arguments, ctx, default_timeout=self.limits.tool_timeout)
        outcome = dataclasses.replace(outcome, files=tuple(ctx.outputs))
        updates = {k: v for k, v in ctx.metadata.items() if metadata.get(k) != v}
        return outcome, updates

    async def hand_off(
        self,
        turn: turns.Turn,
        rule: HandoffRule,
        updates: dict[str, Any],
        tool_step: RunStep | None,
        metadata: dict[str, Any],
    ) -> AsyncIterator[RunEvent]:
        if self.handoffs >= self.limits.max_handoffs:
            raise Stop(
                Run.Status.FAILED,
                f"Stopped after {self.handoffs} handoffs in one "
                "run; the assistants kept passing the conversation around.",
            )
        if tool_step is not None:
            called = ToolStepRecord.from_data(tool_step.data)
            output = store.transferred(rule.target)
            yield ToolResult(
                self.run_id,
                tool_step.pk,
                called.call_id,
                rule.tool_name,
                output,
                False,
                "handoff",
                called.arguments,
            )
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
        yield Handoff(
            self.run_id, step.pk, source.slug, source.name, target.slug, target.name, updates
        )
