"""The flow engine: one caller turn in, the next stage, slots and lines out. Pure: no I/O.

`FlowEngine.step` decides a turn in a fixed order, so a flow author can predict it:

1. escalation: a request for a person (any intent in ``escalation.intents``), abuse,
   or anger for ``anger_turns`` turns in a row → the handoff line and a transfer;
2. slots: values for the stage's ``collect`` and ``amend`` slots (and ``anytime``
   slots) are taken from the utterance and checked;
3. completion: if that completed the stage's slots, its ``complete`` rule fires;
4. intents, best first (priority, then confidence; ``yes``/``no`` count as intents):
   the first with a stage rule fires it; else an objection answers it; else a global
   rule (once a slot was filled, only for intents of priority 1 and up, so "thanks,
   it's for investment" moves on to the next question); ``repeat`` says the last
   lines again;
5. a rejected value → the slot's ``invalid`` line; a filled slot → the stage's ``ack``
   and the next question (or the stage's prompt again for an amended slot);
6. otherwise the turn is *unhandled*: the responder asks the LLM, or calls `fallback`
   (the stage's fallback line; after ``max_misunderstandings`` in a row, a handoff).

Entering a stage says its prompt, or when it has none, asks its first missing slot
(a prompt is expected to ask that question itself); entering an end stage records its
outcome and hangs up. State lives in a `FlowState` the caller keeps
(the responder stores it in ``ctx.state``); nothing here reads a clock or a socket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from ai_pipeline.customers import Customer
from ai_pipeline.documents import answer_from_documents
from ai_pipeline.flow_model import Action, Flow, Rule, Stage, Template
from ai_pipeline.flow_state import FlowState, Step
from ai_pipeline.nlp.analysis import Analysis
from ai_pipeline.nlp.dates import speak_date
from ai_pipeline.nlp.entities import Entities, YesNo
from ai_pipeline.nlp.intent import IntentMatch, IntentSet
from ai_pipeline.nlp.tone import Tone, ToneResult
from ai_pipeline.responder import HangupAction, SayText, TransferAction, TransferTarget
from ai_pipeline.slot_values import (
    Heard,
    SlotFill,
    find_slot_value,
    parse_slot_value,
    speak_slot_value,
)
from ai_pipeline.templates import FieldValue, render, sentences

__all__ = ["FlowEngine", "FlowState", "Step"]

_PSEUDO_CONFIDENCE = 0.9
_MAX_CHAIN = 4  # stage entries in one turn (a complete stage entered completes at once)


class _Turn:
    """Collects one turn's output."""

    def __init__(self, engine: FlowEngine, state: FlowState, now: dt.datetime) -> None:
        self.engine = engine
        self.state = state
        self.now = now
        self.today = now.date()
        self.step = Step()
        self.action: TransferAction | HangupAction | None = None
        self.depth = 0
        self.changed: set[str] = set()

    def say(self, template: Template, key: str) -> None:
        if not template:
            return
        values = self.engine.field_values(self.state, self.now)
        rendered = render(template, values, self.state.rotation, key)
        if rendered is not None and rendered.text:
            for piece in sentences(rendered.text):
                self.step.items.append(SayText(piece, cacheable=rendered.cacheable))

    def event(self, text: str) -> None:
        self.step.events.append(text)

    def finish(self, handled: bool = True) -> Step:
        said = [item for item in self.step.items if isinstance(item, SayText)]
        if said:
            self.state.last_said = said
        if self.action is not None:
            self.step.items.append(self.action)
        self.step.handled = handled
        if handled:
            self.state.misunderstandings = 0
        return self.step


class FlowEngine:
    """Runs one flow. Stateless itself; one instance serves every call of the flow.

    Args:
        flow: the flow.
        transfer: where escalations go when the flow names no target.
    """

    def __init__(self, flow: Flow, *, transfer: TransferTarget) -> None:
        self.flow = flow
        self.transfer = flow.transfer or transfer

    # ------------------------------------------------------------------ set-up

    def start(
        self,
        custom_parameters: Mapping[str, str],
        *,
        caller_number: str = "",
        customer: Customer | None = None,
    ) -> FlowState:
        """A fresh state for a call.

        Args:
            custom_parameters: the call's custom parameters (non-empty values override
                the flow's parameter defaults).
            caller_number: the caller's number.
            customer: the caller, when the directory knows them.
        """
        params = dict(self.flow.parameters)
        if customer is not None:
            params["customer_name"] = customer.name
            for key, value in customer.details.items():
                params[f"customer_{key}"] = value
        params.update({k: v for k, v in custom_parameters.items() if v.strip()})
        if customer is not None:
            call_type = "inbound_existing"
        elif caller_number:
            call_type = "inbound_new"
        else:
            call_type = "inbound_general"
        call_type = custom_parameters.get("call_type", "").strip() or call_type
        params["caller_number"] = caller_number
        state = FlowState(
            flow=self.flow.name,
            stage=self.flow.start,
            call_type=call_type,
            params=params,
            stages=[self.flow.start],
            customer_id=customer.customer_id if customer is not None else None,
            default_outcome=self.flow.default_outcome,
        )
        if customer is not None and "customer_name" in self.flow.slots:
            state.slots["customer_name"] = customer.name
        return state

    def greeting(self, state: FlowState, now: dt.datetime) -> list[SayText]:
        """The first lines: the ``greeting_text`` parameter, else the flow's greeting."""
        turn = _Turn(self, state, now)
        custom = state.params.get("greeting_text", "").strip()
        if custom:
            turn.step.items.extend(SayText(piece) for piece in sentences(custom))
        else:
            greeting = self.flow.greeting
            turn.say(
                greeting.get(state.call_type) or greeting["default"], f"greeting.{state.call_type}"
            )
        stage = self.flow.stages[state.stage]
        missing = self._missing(state, stage)
        if missing is not None and not stage.prompt:
            self._ask(turn, missing)
        return [item for item in turn.finish().items if isinstance(item, SayText)]

    def intents_for(self, state: FlowState) -> IntentSet:
        """The intents to recognise in the current stage."""
        return self.flow.stages[state.stage].intents

    def field_values(self, state: FlowState, now: dt.datetime) -> dict[str, FieldValue]:
        """Template field values for this call (parameters, built-ins, slots)."""
        today = now.date()
        values: dict[str, FieldValue] = {}
        for key, value in state.params.items():
            default = self.flow.parameters.get(key)
            values[key] = FieldValue(value, value, fixed=value == default, today=today)
        name = state.params.get("customer_name", "")
        values["customer_name"] = FieldValue(name, name, today=today)
        first = name.split()[0] if name.split() else ""
        values["customer_first_name"] = FieldValue(first, first, today=today)
        values["call_type"] = FieldValue(state.call_type, today=today)
        values["today"] = FieldValue(speak_date(today), today.isoformat(), today=today)
        for key, spec in self.flow.slots.items():
            if key in state.slots:
                raw = state.slots[key]
                values[key] = FieldValue(speak_slot_value(spec, raw), raw, today=today)
            elif spec.default is not None:
                values[key] = FieldValue(spec.default, spec.default, fixed=True, today=today)
            else:
                values[key] = FieldValue("", today=today)
        return values

    # ------------------------------------------------------------------ turns

    def step(self, state: FlowState, analysis: Analysis, now: dt.datetime) -> Step:
        """Decide one caller turn (see the module docstring for the order).

        Args:
            state: the call's state; updated in place.
            analysis: the NLP result for the turn (from `intents_for`'s set).
            now: the caller's current time.
        """
        turn = _Turn(self, state, now)
        if state.ended:
            return self._repeat_ending(turn)
        state.turns += 1
        state.angry_turns = state.angry_turns + 1 if analysis.tone.tone is Tone.ANGRY else 0
        reason = self._escalation_reason(state, analysis)
        if reason is not None:
            return self._escalate(turn, reason)
        stage = self.flow.stages[state.stage]
        heard = Heard.of(analysis.text, analysis.normalized, analysis.entities)
        candidates = _candidates(analysis)
        strong = any(priority >= 1 for _, priority in candidates)
        was_complete = self._missing(state, stage) is None
        fills = self._fill(turn, stage, heard, text_ok=not strong)
        filled = [fill for fill in fills if fill.valid]
        if stage.collect and not was_complete and self._missing(state, stage) is None:
            rule = stage.complete_rule
            if rule is not None:
                self._fire(turn, rule, heard)
                return turn.finish()
        amended = [s for s in turn.changed if s in stage.amend and s not in stage.collect]
        if amended and all(name in ("yes", "no") for name, _ in candidates):
            # "No, it's for investment": the correction itself answers the question.
            turn.say(stage.ack, f"stage.{stage.name}.ack")
            turn.say(stage.prompt, f"stage.{stage.name}.prompt")
            return turn.finish()
        for name, priority in candidates:
            if self._handle_intent(turn, stage, name, priority, heard, bool(filled)):
                return turn.finish()
        rejected = [fill for fill in fills if not fill.valid]
        if rejected:
            self._reject(turn, rejected[0])
            return turn.finish()
        relevant = [f for f in filled if f.slot in stage.collect or f.slot in stage.amend]
        if not relevant:
            return turn.finish(handled=False)
        turn.say(stage.ack, f"stage.{stage.name}.ack")
        missing = self._missing(state, stage)
        if missing is not None:
            self._ask(turn, missing)
        else:
            turn.say(stage.prompt, f"stage.{stage.name}.prompt")
        return turn.finish()

    def dtmf(self, state: FlowState, digit: str, now: dt.datetime) -> Step:
        """A keypad digit: the stage's or flow's ``dtmf`` map turns it into an intent."""
        stage = self.flow.stages[state.stage]
        intent = stage.dtmf.get(digit) or self.flow.dtmf.get(digit)
        if intent is None:
            return self.fallback(state, None, now)
        yes_no: YesNo | None = "yes" if intent == "yes" else "no" if intent == "no" else None
        ranked: tuple[IntentMatch, ...] = ()
        if yes_no is None:
            priority = next((i.priority for i in stage.intents if i.name == intent), 0)
            ranked = (IntentMatch(intent, 1.0, priority),)
        analysis = Analysis(
            text=f"[dtmf {digit}]",
            normalized="",
            intent=ranked[0].name if ranked else None,
            confidence=1.0 if ranked else 0.0,
            intents=ranked,
            ranked=ranked,
            tone=ToneResult(Tone.NEUTRAL, 0.0, 0.0, False),
            entities=Entities(digitized="", yes_no=yes_no),
            backchannel=False,
        )
        return self.step(state, analysis, now)

    def fallback(
        self,
        state: FlowState,
        analysis: Analysis | None,
        now: dt.datetime,
        *,
        llm_failed: bool = False,
    ) -> Step:
        """The turn was not understood (and no LLM answered): re-prompt, or hand over.

        In a stage with ``answer_from_documents``, a matching document sentence is the
        answer instead. After ``escalation.max_misunderstandings`` in a row, escalate.

        Args:
            state: the call's state.
            analysis: the turn, if it was speech.
            now: the caller's current time.
            llm_failed: the LLM failed or missed its deadline (says ``llm_failure``).
        """
        turn = _Turn(self, state, now)
        if state.ended:
            return self._repeat_ending(turn)
        stage = self.flow.stages[state.stage]
        if stage.answer_from_documents and analysis is not None and not llm_failed:
            answer = answer_from_documents(state.params.get("documents", ""), analysis.text)
            if answer is not None:
                turn.step.items.extend(SayText(piece) for piece in sentences(answer))
                return turn.finish()
        state.misunderstandings += 1
        state.total_misunderstandings += 1
        if state.misunderstandings >= self.flow.escalation.max_misunderstandings:
            return self._escalate(turn, "misunderstood")
        if llm_failed:
            turn.say(self.flow.templates["llm_failure"], "templates.llm_failure")
        elif stage.fallback:
            turn.say(stage.fallback, f"stage.{stage.name}.fallback")
        else:
            turn.say(self.flow.templates["fallback"], "templates.fallback")
            self._resume(turn)
        return turn.finish(handled=False)

    def understood(self, state: FlowState) -> None:
        """Another responder (the LLM) answered the turn: it was not a misunderstanding."""
        state.misunderstandings = 0

    def run_action(
        self, state: FlowState, name: str, arguments: Mapping[str, object], now: dt.datetime
    ) -> Step:
        """An action requested by the LLM (a tool call): fill its slots, run it, move on.

        Missing or rejected slots are asked for instead, so the model can never book
        something the flow's checks would refuse.

        Raises:
            KeyError: the flow has no such action.
        """
        action = self.flow.actions[name]
        turn = _Turn(self, state, now)
        for slot in (*action.slots, *action.optional):
            if slot not in arguments or arguments[slot] in (None, ""):
                continue
            fill = parse_slot_value(self.flow.slots[slot], arguments[slot], turn.today)
            if fill is None:
                continue
            if not fill.valid:
                self._reject(turn, fill)
                return turn.finish()
            self._store(turn, fill)
        if self._do(turn, action):
            self._after_action(turn, action, None, False)
        return turn.finish()

    def escalate(self, state: FlowState, reason: str, now: dt.datetime) -> Step:
        """Hand the caller to a person now (e.g. the LLM's ``transfer_to_human``)."""
        return self._escalate(_Turn(self, state, now), reason)

    def hang_up(self, state: FlowState, reason: str, now: dt.datetime) -> Step:
        """End the call without more words (the LLM's ``end_call``, after its goodbye)."""
        turn = _Turn(self, state, now)
        self._end(turn, HangupAction(reason))
        turn.event(f"end {reason}")
        return turn.finish()

    def silence(self, state: FlowState, now: dt.datetime, *, final: bool) -> Step:
        """The caller went quiet: re-prompt, or (``final``) say goodbye and hang up."""
        turn = _Turn(self, state, now)
        if state.ended:
            return self._repeat_ending(turn)
        if final:
            turn.say(self.flow.templates["silence_goodbye"], "templates.silence_goodbye")
            self._end(turn, HangupAction("silence"))
            return turn.finish()
        turn.say(self.flow.templates["silence"], "templates.silence")
        self._resume(turn)
        return turn.finish()

    # ------------------------------------------------------------------ internals

    def _escalation_reason(self, state: FlowState, analysis: Analysis) -> str | None:
        escalation = self.flow.escalation
        for match in analysis.ranked:
            if match.name in escalation.intents:
                return match.name
        if escalation.abusive and analysis.tone.abusive:
            return "abusive"
        if escalation.angry and state.angry_turns >= escalation.anger_turns:
            return "angry"
        return None

    def _escalate(self, turn: _Turn, reason: str) -> Step:
        state = turn.state
        state.escalated = True
        state.escalation_reason = reason
        state.outcome = "escalated"
        turn.say(self.flow.escalation.line(reason), f"escalation.{reason}")
        self._end(turn, TransferAction(self.transfer))
        turn.event(f"escalate {reason}")
        return turn.finish()

    def _missing(self, state: FlowState, stage: Stage) -> str | None:
        return next((slot for slot in stage.collect if slot not in state.slots), None)

    def _fill(self, turn: _Turn, stage: Stage, heard: Heard, *, text_ok: bool) -> list[SlotFill]:
        state = turn.state
        names = list(dict.fromkeys((*stage.collect, *stage.amend)))
        names += [n for n, spec in self.flow.slots.items() if spec.anytime and n not in names]
        fills: list[SlotFill] = []
        for name in names:
            spec = self.flow.slots[name]
            asked = state.asking == name
            if spec.type == "text" and not text_ok:
                continue
            fill = find_slot_value(spec, heard, asked=asked, today=turn.today)
            if fill is None:
                continue
            fills.append(fill)
            if fill.valid:
                self._store(turn, fill)
        return fills

    def _store(self, turn: _Turn, fill: SlotFill) -> None:
        assert fill.value is not None
        if turn.state.slots.get(fill.slot) != fill.value:
            turn.state.slots[fill.slot] = fill.value
            turn.changed.add(fill.slot)
            turn.event(f"slot {fill.slot} = {fill.value}")

    def _reject(self, turn: _Turn, fill: SlotFill) -> None:
        spec = self.flow.slots[fill.slot]
        turn.event(f"rejected {fill.slot}: {fill.said}")
        turn.state.asking = fill.slot
        if spec.invalid:
            turn.say(spec.invalid, f"slot.{fill.slot}.invalid")
        else:
            turn.say(spec.prompt, f"slot.{fill.slot}.prompt")

    def _ask(self, turn: _Turn, slot: str) -> None:
        turn.state.asking = slot
        turn.say(self.flow.slots[slot].prompt, f"slot.{slot}.prompt")

    def _resume(self, turn: _Turn) -> None:
        state = turn.state
        if state.asking is not None:
            self._ask(turn, state.asking)
        else:
            stage = self.flow.stages[state.stage]
            turn.say(stage.prompt, f"stage.{stage.name}.prompt")

    def _handle_intent(
        self, turn: _Turn, stage: Stage, name: str, priority: int, heard: Heard, filled: bool
    ) -> bool:
        for rule in stage.rules:
            if name in rule.intents:
                self._fire(turn, rule, heard)
                return True
        objection = self.flow.objections.get(name)
        if objection is not None:
            state = turn.state
            state.objections.append(name)
            turn.event(f"objection {name}")
            self._set(turn, objection.set)
            turn.say(objection.say, f"objection.{name}")
            if objection.goto is not None and objection.goto in stage.transitions:
                self._enter(turn, objection.goto, prompt=False, heard=None)
            elif objection.resume:
                self._resume(turn)
            return True
        if filled and priority < 1:
            return False
        for rule in self.flow.global_rules:
            if name in rule.intents:
                self._fire(turn, rule, heard)
                return True
        if name == "repeat" and turn.state.last_said:
            turn.step.items.extend(turn.state.last_said)
            return True
        return False

    def _set(self, turn: _Turn, values: Mapping[str, str]) -> None:
        for slot, literal in values.items():
            fill = parse_slot_value(self.flow.slots[slot], literal, turn.today)
            if fill is not None and fill.valid:
                self._store(turn, fill)

    def _fire(self, turn: _Turn, rule: Rule, heard: Heard | None) -> None:
        state = turn.state
        self._set(turn, rule.set)
        for slot in rule.clear:
            state.slots.pop(slot, None)
        if rule.outcome is not None:
            state.outcome = rule.outcome
        turn.say(rule.say, f"rule.{state.stage}.{id(rule)}")
        if rule.transfer:
            self._escalate(turn, "rule")
            return
        if rule.do is not None:
            action = self.flow.actions[rule.do]
            if not self._do(turn, action):
                return
            self._after_action(turn, action, rule.goto, rule.end, prompt=rule.prompt)
            return
        if rule.goto is not None:
            self._enter(turn, rule.goto, prompt=rule.prompt, heard=heard)
        elif rule.end:
            self._hang_up(turn, "completed")
        elif rule.resume:
            self._resume(turn)

    def _do(self, turn: _Turn, action: Action) -> bool:
        """Run an action if its slots are filled; else ask for the first missing one."""
        state = turn.state
        missing = next((slot for slot in action.slots if slot not in state.slots), None)
        if missing is not None:
            self._ask(turn, missing)
            return False
        state.actions.append(action.name)
        turn.event(f"action {action.name}")
        if action.outcome is not None:
            state.outcome = action.outcome
        turn.say(action.say, f"action.{action.name}")
        return True

    def _after_action(
        self, turn: _Turn, action: Action, goto: str | None, end: bool, *, prompt: bool = True
    ) -> None:
        target = goto or action.goto
        if target is not None:
            self._enter(turn, target, prompt=prompt, heard=None)
        elif end or action.end:
            self._hang_up(turn, "completed")

    def _hang_up(self, turn: _Turn, reason: str) -> None:
        self._end(turn, HangupAction(reason))
        turn.event(f"end {reason}")

    @staticmethod
    def _end(turn: _Turn, action: TransferAction | HangupAction) -> None:
        turn.state.ended = True
        turn.state.final_action = action
        turn.action = action

    @staticmethod
    def _repeat_ending(turn: _Turn) -> Step:
        # The flow is over but the caller is still there: the goodbye or transfer line was
        # cut (barge-in) before the action ran. Carry the action out now, without words.
        turn.action = turn.state.final_action
        if turn.action is not None:
            turn.event("ending repeated")
        return turn.finish()

    def _enter(self, turn: _Turn, name: str, *, prompt: bool, heard: Heard | None) -> None:
        state = turn.state
        if name != state.stage:
            turn.event(f"stage {state.stage} -> {name}")
            state.stage = name
            state.stages.append(name)
        stage = self.flow.stages[name]
        state.asking = None
        turn.depth += 1
        if stage.end:
            if stage.outcome is not None:
                state.outcome = stage.outcome
            turn.say(stage.prompt, f"stage.{name}.prompt")
            self._hang_up(turn, "completed")
            return
        if heard is not None and stage.collect:
            # The turn that led here may already carry the details ("a table for four
            # tomorrow at seven"): take them now instead of asking for them.
            rejected = [f for f in self._fill(turn, stage, heard, text_ok=False) if not f.valid]
            if rejected:
                turn.say(stage.prompt, f"stage.{name}.prompt")
                self._reject(turn, rejected[0])
                return
        missing = self._missing(state, stage)
        if missing is None and stage.collect and stage.complete_rule and turn.depth < _MAX_CHAIN:
            self._fire(turn, stage.complete_rule, None)
            return
        if prompt and stage.prompt:
            # A stage prompt asks its own question ("shall I book this Saturday?"): the
            # first missing slot is then taken as asked, not asked a second time.
            turn.say(stage.prompt, f"stage.{name}.prompt")
            state.asking = missing
        elif missing is not None:
            self._ask(turn, missing)


def _candidates(analysis: Analysis) -> list[tuple[str, int]]:
    """Intents to try, best first, with ``yes``/``no`` ranked as priority-0 intents."""
    ranked = [(m.name, m.priority, m.confidence) for m in analysis.ranked]
    yes_no = analysis.entities.yes_no
    if yes_no is not None:
        ranked.append((yes_no, 0, _PSEUDO_CONFIDENCE))
    ranked.sort(key=lambda item: (-item[1], -item[2]))
    return [(name, priority) for name, priority, _ in ranked]
