"""The run loop: the one place where a thread's assistants speak, call tools and hand off.

`execute(run_id)` is an async generator of events consumed by everything — the websocket,
the Python API, the terminal chat and the tests. It knows no HTTP and no websocket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from assistants_registry.registry import Registry
from assistants_registry.registry import registry as default_registry
from chatapp import admission
from chatapp.db import db
from chatapp.models import Assistant, Message, Run
from chatapp.providers import get_provider
from chatapp.providers.base import (
    Finished,
    ProviderError,
    TextChunk,
    ToolCall,
    ToolCallReady,
    Usage,
)
from chatapp.runs import cancellation, context, store, turns
from chatapp.runs.events import (
    ApprovalRequested,
    Handoff,
    MessageCompleted,
    MessageStarted,
    RunEvent,
    RunFinished,
    RunStarted,
    TextDelta,
)
from chatapp.runs.limits import Budget, Limits, ModelClock, StepCounter, Stop, cut_reason
from chatapp.runs.tool_steps import ToolSteps

logger = logging.getLogger(__name__)


async def execute(
    run_id: Any,
    *,
    registry: Registry = default_registry,
    limits: Limits | None = None,
    depth: int = 0,
    budget: Budget | None = None,
    watch: tuple[str, ...] = (),
) -> AsyncIterator[RunEvent]:
    """Run a queued run to its end, yielding what happens. Nothing is written per token.

    `limits` defaults to the settings' (read once, here). A consultation runs its child with
    `depth` + 1, the parent's step `budget`, and the ancestors' run ids to `watch` for a stop
    request.
    """
    # Our own work up to the first model call or tool is admitted a few runs at a time
    # (chatapp/admission.py); a consultation runs inside its parent's tool step.
    ticket = await admission.runs.enter() if depth == 0 else admission.Ticket()
    try:
        try:
            start = await db(store.begin)(str(run_id), watch)
        except store.RunNotStartable:
            logger.info("Run %s is not queued; not starting it", run_id)
            return
        run, limits = start.run, limits or Limits.from_settings()
        loop = RunLoop(
            run, registry, limits, depth=depth, budget=budget, watch=watch, ticket=ticket
        )
        loop.next_turn, loop.resume = start.turn, start.resume
        if start.resume is not None:  # the run goes on where it paused
            loop.step_index, loop.usage = (
                start.resume.last_index,
                {**loop.usage, **start.resume.usage},
            )
        yield RunStarted(
            str(run.pk),
            str(run.thread_id),
            run.assistant.slug,
            start.question_id,
            start.question,
            start.client_id,
            start.turn.thread.title,
        )
        status, error, detail = Run.Status.COMPLETED, "", ""
        # The heartbeat says "alive" even while a model thinks for a long time before its first
        # token, so a slow run is never mistaken for a dead one and expired; it also hears a Stop
        # asked in another process while the model is silent.
        heart = asyncio.create_task(beat(loop.watch, limits.heartbeat_interval))
        try:
            async for event in loop.steps():
                yield event
        except Paused as paused:
            heart.cancel()
            requests = await loop.pause(paused)
            if requests is not None:
                for request in requests:
                    yield request
                yield RunFinished(str(run.pk), Run.Status.AWAITING_APPROVAL)
                return
            status, error = stopped()  # a Stop came first: nothing was put to the user
        except Stop as stop:
            status, error = stop.status, stop.reason
        except cancellation.Cancelled:
            status, error = stopped()
        except ProviderError as exc:
            status, error, detail = Run.Status.FAILED, str(exc), exc.detail
            logger.warning("Run %s: the model call failed: %s", run.pk, detail or error)
        except context.InstructionsError as exc:
            status, error = Run.Status.FAILED, str(exc)
        except asyncio.CancelledError:  # the task running us was cancelled: keep what we have
            await loop.end(*stopped())
            raise
        except Exception:
            logger.exception("Run %s crashed", run.pk)
            status, error = Run.Status.FAILED, "Something went wrong on our side; the run stopped."
        finally:
            heart.cancel()
        if (event := await loop.end(status, error, detail)) is not None:
            yield event
        yield RunFinished(str(run.pk), status, error)
    finally:
        ticket.leave()


def stopped() -> tuple[str, str]:
    """A run stopped from outside: by a person, or by its server shutting down."""
    if cancellation.shutting_down():
        return Run.Status.INTERRUPTED, "The server restarted while answering; ask again."
    return Run.Status.CANCELLED, "Stopped."


class Paused(Exception):
    """A turn's tool calls wait for the user's approval (raised before any of them runs)."""

    def __init__(self, assistant: Assistant, message_id: int, calls: list[ToolCall]) -> None:
        super().__init__(f"{len(calls)} call(s) await approval")
        self.assistant, self.message_id, self.calls = assistant, message_id, calls


async def beat(watch: tuple[str, ...], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        if await db(store.beat)(watch):
            cancellation.request(watch[0])  # a Stop asked elsewhere: stop now, not later


class RunLoop:
    """One run: model turns until an answer, tool steps and handoffs in between."""

    def __init__(
        self,
        run: Run,
        registry: Registry,
        limits: Limits,
        *,
        depth: int = 0,
        budget: Budget | None = None,
        watch: tuple[str, ...] = (),
        ticket: admission.Ticket | None = None,
    ) -> None:
        self.run, self.run_id, self.registry, self.limits = run, str(run.pk), registry, limits
        self.ticket = ticket or admission.Ticket()  # left before the model or a tool is called
        self.depth, self.watch = depth, (str(run.pk), *watch)
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        self.counter = StepCounter(shared=budget)
        self.step_index = 0
        self.message: Message | None = None  # the assistant message being streamed
        self.text = ""
        self.answered = False  # the message streamed whole, with no calls: the run's answer
        self.next_turn: turns.Turn | None = None  # loaded ahead, with the run's start
        self.resume: turns.Resume | None = None  # the paused turn's calls, now decided
        self.last_message_id = 0  # the latest assistant message, whose calls may pause
        self.saving: asyncio.Task[None] | None = None  # the partial text being saved
        self.tools = ToolSteps(
            run,
            limits,
            self.counter,
            watch=self.watch,
            next_index=self.next_index,
            run_child=self.child_events,
        )

    async def steps(self) -> AsyncIterator[RunEvent]:
        while True:
            turn, self.next_turn = self.next_turn, None
            if turn is None:
                turn = await db(turns.load_turn)(self.run_id, self.watch[1:])
            if turn.stop_requested or cancellation.requested(self.run_id):
                raise Stop(Run.Status.CANCELLED, "Stopped.")
            assistant = turn.assistant
            may_consult = self.depth < self.limits.max_consult_depth
            tools = context.assistant_tools(
                assistant,
                turn.rules,
                self.registry,
                turn.consults if may_consult else [],
                turn.permissions,
            )
            resume, self.resume = self.resume, None
            if resume is not None:  # the paused turn's calls, decided: no model call
                calls, decisions = resume.calls, resume.decisions
            else:
                self.counter.spend(assistant)
                provider = get_provider(assistant.provider)
                request = context.build_request(
                    turn.thread,
                    assistant,
                    turn.history,
                    tools,
                    assistant.model or provider.default_model,
                )
                calls, decisions = [], {}
                self.ticket.leave()
                stream = provider.stream(request)
                async for event in self.stream_message(stream, assistant, calls):
                    yield event
                if not calls:
                    return
                # Only the run the user follows pauses: a consulted specialist's calls that
                # need approval are refused (ToolSteps never runs one undecided).
                asking = [call for call in calls if tools.needs_approval(call)]
                if asking and self.depth == 0:
                    raise Paused(assistant, self.last_message_id, asking)
            moved = False
            self.ticket.leave()
            async for event in self.tools.run_tools(turn, tools, calls, decisions):
                moved = moved or isinstance(event, Handoff)
                yield event
            rule = self.tools.last_rule
            if moved and rule is not None and not rule.respond_immediately:
                return

    async def stream_message(
        self, stream: AsyncIterator[Any], assistant: Assistant, calls: list[ToolCall]
    ) -> AsyncIterator[RunEvent]:
        """One model call, within its time limits; the partial text is saved on a timer,
        whether or not the model is sending anything."""
        self.message = await db(store.start_message)(self.run, assistant)
        self.text = self.saved_text = ""
        yield MessageStarted(self.run_id, self.message.pk, assistant.slug, assistant.name)
        clock, finished = ModelClock(self.limits), Finished()
        async with cancellation.StreamWatch(self.run_id, clock, self.save_partial_text) as watch:
            async for chunk in watch.read(stream):
                clock.heard()
                if type(chunk) is TextChunk and chunk.text:
                    yield TextDelta(self.run_id, self.message.pk, len(self.text), chunk.text)
                    self.text += chunk.text
                elif isinstance(chunk, ToolCallReady):
                    calls.append(chunk.call)
                elif isinstance(chunk, Usage):
                    self.usage["prompt_tokens"] += chunk.prompt_tokens
                    self.usage["completion_tokens"] += chunk.completion_tokens
                elif isinstance(chunk, Finished):
                    finished = chunk
        if not calls and not finished.cut:  # the answer: saved with the run's end, together
            self.answered = True
            return
        completed = await self.close_message(complete=not finished.cut, calls=calls)
        if completed is not None:
            yield completed
        if finished.cut:  # its tool calls may be cut too: they are kept, not run
            raise Stop(Run.Status.FAILED, cut_reason(finished.reason))

    def save_partial_text(self) -> None:
        """Save in the background: the stream must not wait for the database. One save at a
        time; a later one carries all the text anyway."""
        if self.message is None or self.text == self.saved_text:
            return
        if self.saving is None or self.saving.done():
            self.saved_text = self.text
            self.saving = asyncio.ensure_future(db(store.flush)(self.message.pk, self.text))

    async def partial_text_saved(self) -> None:
        """Wait for a save in flight: it must not land after the final text."""
        if self.saving is not None:
            await asyncio.wait([self.saving])
            self.saving = None

    async def close_message(
        self, *, complete: bool, calls: list[ToolCall] | None = None
    ) -> MessageCompleted | None:
        """Persist the streamed message (partial, when the run stops early) exactly once."""
        await self.partial_text_saved()
        message, self.message = self.message, None
        if message is None:
            return None
        self.last_message_id = message.pk
        await db(store.finish_message)(
            self.run,
            message,
            self.text,
            list(calls or ()),
            complete=complete,
            step_index=self.next_index(),
            usage=dict(self.usage),
        )
        status = "complete" if complete else "incomplete"
        name = message.assistant.name if message.assistant else ""
        return MessageCompleted(self.run_id, message.pk, self.text, status, name)

    async def end(self, status: str, error: str, detail: str = "") -> MessageCompleted | None:
        """Write the end of the run — its last message (the answer, or as far as it got) and
        its status — in one call, so that a cancellation arriving meanwhile cannot split
        them."""
        await self.partial_text_saved()
        message, self.message = self.message, None
        index = self.next_index() if message is not None else 0
        await db(store.end_run)(
            self.run,
            status,
            error,
            dict(self.usage),
            detail,
            message,
            self.text,
            index,
            complete=self.answered,
        )
        cancellation.forget(self.run_id)
        if message is None:
            return None
        name = message.assistant.name if message.assistant else ""
        state = "complete" if self.answered else "incomplete"
        return MessageCompleted(self.run_id, message.pk, self.text, state, name)

    async def pause(self, paused: Paused) -> list[ApprovalRequested] | None:
        """Record the calls put to the user and pause the run; None if a Stop came first."""
        first_index = self.step_index + 1
        self.step_index += len(paused.calls)
        steps = await db(store.pause_for_approval)(
            self.run,
            paused.assistant,
            paused.message_id,
            paused.calls,
            first_index,
            dict(self.usage),
        )
        if steps is None:
            return None
        cancellation.forget(self.run_id)
        return [
            ApprovalRequested(
                self.run_id, step.pk, call.id, call.name, call.arguments, paused.assistant.name
            )
            for step, call in zip(steps, paused.calls, strict=True)
        ]

    def child_events(self, run_id: Any, budget: Budget) -> AsyncIterator[RunEvent]:
        return execute(
            run_id,
            registry=self.registry,
            limits=self.limits,
            depth=self.depth + 1,
            budget=budget,
            watch=self.watch,
        )

    def next_index(self) -> int:
        self.step_index += 1
        return self.step_index
