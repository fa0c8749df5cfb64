"""`FlowResponder`: conversation flows from data, templates first, an LLM for the rest.

Each turn: the NLP reads the caller's words (intent, tone, details) → the flow engine
moves the conversation (stage, slots, objections, escalation) → if the flow has an
answer, its template lines are said at once (deterministic, no model). Only a turn the
flow cannot place goes to the chat model, with a system prompt built from the flow and
the call so far; its tokens are cut into sentences and each sentence is handed to
speech the moment it is complete. The model can also hand the call over, end it, or
run the flow's actions (book a visit, a table, an appointment) through tools, which
fill the flow's slots and record the outcome exactly as a template turn would.

Dead air is bounded: waiting for the model's next sentence never exceeds
``llm_deadline_s``. When nothing came in time, or the model failed, the caller hears
the flow's graceful line ("Sorry, could you say that again?"), and repeated failures
count as misunderstandings, so the flow hands over to a person rather than looping.

Per-call state (a `FlowState`) lives in ``ctx.state["flow"]``; one responder serves
every call. `outcome_of` reads the result for persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ai_pipeline.customers import CustomerDirectory
from ai_pipeline.flow_engine import FlowEngine
from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_schema import select_flow
from ai_pipeline.flow_state import FlowState, Step
from ai_pipeline.llm import ChatModel, LlmError, TextDelta, ToolCall
from ai_pipeline.nlp.analysis import Analysis, analyze
from ai_pipeline.prompts import (
    END_CALL_TOOL,
    TRANSFER_TOOL,
    build_messages,
    build_system_prompt,
    tool_specs,
)
from ai_pipeline.responder import (
    ConversationContext,
    ResponseItem,
    SayText,
    TransferTarget,
    UserTurn,
)
from ai_pipeline.rule_responder import DEFAULT_TRANSFER_TARGET
from ai_pipeline.text_split import SentenceSplitter

__all__ = ["STATE_KEY", "CallOutcome", "FlowResponder", "outcome_of"]

log = logging.getLogger(__name__)

STATE_KEY: Final = "flow"
"""Where the call's `FlowState` is kept in ``ctx.state``."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call went, for the call record.

    Attributes:
        flow: the flow used.
        outcome: ``qualified`` / ``follow_up`` / ``not_interested`` (real estate),
            ``booked`` / ``escalated`` / ``info`` (the others), or the flow's own;
            the flow's default when the call ended without one.
        decided: the flow reached ``outcome`` itself (False: it is the flow's default).
        stage: the last stage.
        stages: the stages visited, in order.
        slots: the values collected (JSON-ready).
        escalated: the call was handed to a person.
        escalation_reason: why (``human``, ``angry``, ``misunderstood``, ...).
        objections: objections raised, in order.
        actions: actions completed, in order.
        call_type: ``inbound_existing``, ``inbound_new``, ``inbound_general``,
            ``outbound``.
        turns: caller turns.
        misunderstandings: turns nobody understood.
        customer_id: the directory's id for a known caller.
    """

    flow: str
    outcome: str | None
    stage: str
    stages: tuple[str, ...]
    slots: Mapping[str, Any]
    escalated: bool
    escalation_reason: str | None
    objections: tuple[str, ...]
    actions: tuple[str, ...]
    call_type: str
    turns: int
    misunderstandings: int
    customer_id: str | None
    decided: bool = False


def outcome_of(ctx: ConversationContext) -> CallOutcome | None:
    """The outcome of a call handled by a `FlowResponder` (None for other responders)."""
    state = ctx.state.get(STATE_KEY)
    if not isinstance(state, FlowState):
        return None
    return CallOutcome(
        flow=state.flow,
        outcome=state.outcome or state.default_outcome,
        stage=state.stage,
        stages=tuple(state.stages),
        slots=dict(state.slots),
        escalated=state.escalated,
        escalation_reason=state.escalation_reason,
        objections=tuple(state.objections),
        actions=tuple(state.actions),
        call_type=state.call_type,
        turns=state.turns,
        misunderstandings=state.total_misunderstandings,
        customer_id=state.customer_id,
        decided=state.outcome is not None,
    )


class FlowResponder:
    """A `Responder` driven by conversation flows, with an optional chat model.

    Args:
        flows: the loaded flows by name (see `load_flows`).
        default_flow: the flow for calls that select none.
        chat_model: answers turns the flow cannot; None keeps every turn on templates.
        customers: looks callers up for flows with ``customer_lookup``.
        transfer_target: where escalations go for flows that name no target.
        llm_deadline_s: the longest wait for the model's next sentence.
        history_turns: utterances of history sent to the model.
        clock: the current time (aware; converted to each flow's time zone).

    Raises:
        ValueError: the default flow is not among the flows, or a limit is not positive.
    """

    def __init__(
        self,
        flows: Mapping[str, Flow],
        *,
        default_flow: str,
        chat_model: ChatModel | None = None,
        customers: CustomerDirectory | None = None,
        transfer_target: TransferTarget = DEFAULT_TRANSFER_TARGET,
        llm_deadline_s: float = 4.0,
        history_turns: int = 12,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if default_flow not in flows:
            known = ", ".join(sorted(flows)) or "none"
            raise ValueError(f"default flow {default_flow!r} is not loaded (flows: {known})")
        if llm_deadline_s <= 0 or history_turns < 0:
            raise ValueError("llm_deadline_s must be positive and history_turns not negative")
        self.flows = dict(flows)
        self.default_flow = default_flow
        self._chat = chat_model
        self._customers = customers
        self._deadline = llm_deadline_s
        self._history = history_turns
        self._clock = clock
        self._engines = {
            name: FlowEngine(flow, transfer=transfer_target) for name, flow in self.flows.items()
        }
        self._tools = {name: tool_specs(flow) for name, flow in self.flows.items()}

    # ------------------------------------------------------------------ Responder

    def greeting(self, ctx: ConversationContext) -> str:
        """Choose the call's flow and say its greeting (``greeting_text`` wins)."""
        state = self.state_of(ctx)
        engine = self._engines[state.flow]
        lines = engine.greeting(state, self._now(engine.flow))
        return " ".join(line.text for line in lines)

    async def respond(
        self, turn: UserTurn, ctx: ConversationContext
    ) -> AsyncGenerator[ResponseItem, None]:
        """Answer one turn: template lines at once, or the model's sentences as they come.

        The flow's decision (and ``ctx.state``) is settled before the first item is
        yielded; cancelling the iteration on barge-in closes the model's stream.
        """
        state = self.state_of(ctx)
        engine = self._engines[state.flow]
        now = self._now(engine.flow)
        analysis: Analysis | None = None
        if turn.dtmf is not None:
            step = engine.dtmf(state, turn.dtmf, now)
        else:
            analysis = analyze(turn.text, engine.intents_for(state), now=now)
            step = engine.step(state, analysis, now)
            log.info(
                "flow=%s stage=%s intent=%s (%.2f) tone=%s handled=%s",
                state.flow,
                state.stage,
                analysis.intent,
                analysis.confidence,
                analysis.tone.tone.value,
                step.handled,
            )
        if step.events:
            log.debug("flow events: %s", "; ".join(step.events))
        if step.handled or analysis is None:
            for item in step.items:
                yield item
            return
        if self._chat is None or not engine.flow.stages[state.stage].llm:
            for item in engine.fallback(state, analysis, now).items:
                yield item
            return
        # aclosing: on barge-in the session closes this generator; the model's stream
        # must close with it (not whenever the garbage collector gets to it).
        async with contextlib.aclosing(
            self._ask_model(engine, state, ctx, turn, analysis, now)
        ) as items:
            async for item in items:
                yield item

    # ------------------------------------------------------------------ extras

    def state_of(self, ctx: ConversationContext) -> FlowState:
        """The call's flow state, created (flow chosen, caller looked up) on first use."""
        state = ctx.state.get(STATE_KEY)
        if isinstance(state, FlowState):
            return state
        flow = select_flow(self.flows, ctx.custom_parameters, ctx.to_number, self.default_flow)
        customer = None
        if flow.customer_lookup and self._customers is not None and ctx.from_number:
            customer = self._customers.lookup(ctx.from_number)
        state = self._engines[flow.name].start(
            ctx.custom_parameters, caller_number=ctx.from_number, customer=customer
        )
        ctx.state[STATE_KEY] = state
        log.info("flow=%s call_type=%s", flow.name, state.call_type)
        return state

    def silence(self, ctx: ConversationContext, *, final: bool = False) -> list[ResponseItem]:
        """What to say when the caller has gone quiet.

        Args:
            ctx: the call.
            final: the longer silence: say goodbye and hang up (a `HangupAction` with
                reason ``silence`` ends the list).
        """
        state = self.state_of(ctx)
        engine = self._engines[state.flow]
        return engine.silence(state, self._now(engine.flow), final=final).items

    def _now(self, flow: Flow) -> dt.datetime:
        now = self._clock()
        if flow.timezone is None:
            return now
        if now.tzinfo is None:
            return now.replace(tzinfo=flow.timezone)
        return now.astimezone(flow.timezone)

    # ------------------------------------------------------------------ the model

    async def _ask_model(
        self,
        engine: FlowEngine,
        state: FlowState,
        ctx: ConversationContext,
        turn: UserTurn,
        analysis: Analysis,
        now: dt.datetime,
    ) -> AsyncGenerator[ResponseItem, None]:
        assert self._chat is not None
        flow = engine.flow
        system = build_system_prompt(flow, state, engine.field_values(state, now), now)
        messages = build_messages(system, ctx.history, turn.text, limit=self._history)
        stream = self._chat.stream(
            messages, self._tools[flow.name], meter=ctx.usage, call_id=ctx.call_id
        )
        splitter = SentenceSplitter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline
        said = False
        failure: str | None = None
        try:
            while True:
                # Only the wait is under the deadline, never a yield: the consumer runs
                # in this task while we are suspended, and must not be cancelled by us.
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    failure = f"no sentence within {self._deadline:g} s"
                    break
                except LlmError as exc:
                    failure = str(exc) or type(exc).__name__
                    break
                if isinstance(event, TextDelta):
                    for piece in splitter.push(event.text):
                        said = True
                        yield SayText(piece)
                        deadline = loop.time() + self._deadline
                    continue
                rest = splitter.flush()
                if rest is not None:
                    said = True
                    yield SayText(rest)
                step = self._run_tool(engine, state, event, now)
                engine.understood(state)
                for item in step.items:
                    yield item
                return
            if failure is None:
                rest = splitter.flush()
                if rest is not None:
                    said = True
                    yield SayText(rest)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if failure is not None:
            log.warning("chat model failed: %s", failure)
        if said:
            engine.understood(state)
            return
        for item in engine.fallback(state, analysis, now, llm_failed=True).items:
            yield item

    def _run_tool(
        self, engine: FlowEngine, state: FlowState, call: ToolCall, now: dt.datetime
    ) -> Step:
        log.info("chat model called %s", call.name)
        if call.name == TRANSFER_TOOL:
            return engine.escalate(state, "tool", now)
        if call.name == END_CALL_TOOL:
            return engine.hang_up(state, str(call.arguments.get("reason") or "completed"), now)
        if call.name in engine.flow.actions:
            return engine.run_action(state, call.name, call.arguments, now)
        log.warning("chat model called an unknown tool %r", call.name)
        return Step()
