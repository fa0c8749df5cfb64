"""The in-memory form of a conversation flow, as loaded and checked by `flow_schema`.

A flow is data: stages with prompts and rules, slots with types and validation,
intents, objections, escalation rules, actions and outcomes. Every object here is
immutable and fully resolved (patterns compiled, references checked), so the engine
never meets a dangling name or a bad pattern in the middle of a call.

Templates are tuples of variants for `str.format`; see `ai_pipeline.templates`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal
from zoneinfo import ZoneInfo

from ai_pipeline.nlp.intent import IntentSet
from ai_pipeline.responder import TransferTarget

__all__ = [
    "BUILTIN_FIELDS",
    "CALL_TYPES",
    "PSEUDO_INTENTS",
    "SLOT_TYPES",
    "Action",
    "EnumValue",
    "Escalation",
    "Flow",
    "Objection",
    "Rule",
    "SlotSpec",
    "SlotType",
    "Stage",
    "Template",
]

Template = tuple[str, ...]
"""Variants of one line; the engine rotates through them within a call."""

SlotType = Literal["enum", "number", "money", "date", "time", "phone", "text", "name", "boolean"]
SLOT_TYPES: Final[frozenset[str]] = frozenset(
    {"enum", "number", "money", "date", "time", "phone", "text", "name", "boolean"}
)

PSEUDO_INTENTS: Final = frozenset({"yes", "no"})
"""Intents a rule may name that come from the yes/no entity, not from patterns."""

CALL_TYPES: Final = ("inbound_existing", "inbound_new", "inbound_general", "outbound")
"""Greeting keys besides ``default``: a known customer, an unknown caller number, no
caller number, a call we placed (custom parameter ``call_type=outbound``)."""

BUILTIN_FIELDS: Final = frozenset(
    {"customer_name", "customer_first_name", "caller_number", "call_type", "today"}
)
"""Template fields every flow may use besides its parameters and slots."""


@dataclass(frozen=True, slots=True)
class EnumValue:
    """One allowed value of an enum slot.

    Attributes:
        key: the stored value (``own_use``).
        say: how the bot says it (``"your family"``).
        patterns: what the caller may say for it (boundary-wrapped, on normalised
            text and on text with numbers as digits).
    """

    key: str
    say: str
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A piece of information the flow collects.

    Attributes:
        name: the slot's name (also its template field).
        type: how values are found and checked.
        prompt: the question that asks for it.
        invalid: said when the caller gave a value the checks reject (include the
            question again).
        description: for the LLM tool schema.
        values: for enums.
        minimum: lowest number / amount accepted.
        maximum: highest number / amount accepted.
        currency: money: the currency assumed when the caller names none.
        not_past: date: refuse days before today.
        max_days_ahead: date: refuse days further ahead than this.
        weekdays: date: allowed weekdays (0 = Monday); None for all.
        earliest: time: the earliest time accepted.
        latest: time: the latest time accepted.
        assume: time: the reading of an ambiguous "at 7" when both fit (``am``/``pm``).
        parts_of_day: time: what "morning" etc. mean when said alone.
        entity: number: ``party_size`` to read party sizes ("table for four").
        max_words: text/name: longest answer accepted as a value.
        default: the value templates use while the slot is empty.
        anytime: fill from any turn where it is mentioned, not only in stages that
            collect it.
    """

    name: str
    type: SlotType
    prompt: Template
    invalid: Template = ()
    description: str = ""
    values: tuple[EnumValue, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    currency: str | None = None
    not_past: bool = True
    max_days_ahead: int | None = None
    weekdays: frozenset[int] | None = None
    earliest: dt.time | None = None
    latest: dt.time | None = None
    assume: Literal["am", "pm"] | None = None
    parts_of_day: Mapping[str, dt.time] = field(default_factory=dict)
    entity: str | None = None
    max_words: int = 6
    default: str | None = None
    anytime: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do when a condition holds in a stage (or anywhere, for global rules).

    Attributes:
        intents: the intents (or ``yes``/``no``) that trigger it.
        complete: triggers when the stage's collected slots have just become complete.
        say: what to say.
        goto: the stage to move to (its prompt follows unless ``prompt`` is false).
        set: slot values to set, as text parsed by the slot's type ("this Saturday").
        clear: slots to empty.
        do: an action to run (records it; may set the outcome and move on).
        outcome: the call's outcome from now on.
        end: hang up after speaking.
        transfer: hand over to a person after speaking.
        prompt: say the target stage's prompt after moving.
        resume: ask the pending question again afterwards (for side questions).
    """

    intents: frozenset[str] = frozenset()
    complete: bool = False
    say: Template = ()
    goto: str | None = None
    set: Mapping[str, str] = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    do: str | None = None
    outcome: str | None = None
    end: bool = False
    transfer: bool = False
    prompt: bool = True
    resume: bool = False


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the conversation.

    Attributes:
        name: the stage's name.
        goal: what the stage is for (told to the LLM).
        prompt: said on entering (after any slot questions are decided).
        transitions: the stages rules here may move to.
        collect: slots asked for, in order, until all are filled.
        amend: slots the caller may change here (the stage is re-entered).
        rules: checked in order for each candidate intent.
        intents: the full intent set matched in this stage.
        fallback: said when nothing here understood the caller.
        ack: said before the next question when a slot was filled.
        dtmf: keypad digits mapped to intents (over the flow's map).
        end: entering it ends the call (after its prompt).
        outcome: the outcome an end stage records.
        answer_from_documents: answer unknown questions from the ``documents``
            parameter when no LLM is available.
        llm: unknown turns here may go to the LLM.
    """

    name: str
    goal: str = ""
    prompt: Template = ()
    transitions: frozenset[str] = frozenset()
    collect: tuple[str, ...] = ()
    amend: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    intents: IntentSet = field(default_factory=IntentSet)
    fallback: Template = ()
    ack: Template = ()
    dtmf: Mapping[str, str] = field(default_factory=dict)
    end: bool = False
    outcome: str | None = None
    answer_from_documents: bool = False
    llm: bool = True

    @property
    def complete_rule(self) -> Rule | None:
        """The rule that fires when the collected slots become complete."""
        return next((rule for rule in self.rules if rule.complete), None)


@dataclass(frozen=True, slots=True)
class Objection:
    """A concern the caller raises, with the answer to it.

    Attributes:
        name: the objection (also its intent's name).
        say: the answer.
        goto: the stage to move to, if the current stage allows it.
        set: slot values to set.
        resume: ask the pending question again afterwards.
    """

    name: str
    say: Template
    goto: str | None = None
    set: Mapping[str, str] = field(default_factory=dict)
    resume: bool = False


@dataclass(frozen=True, slots=True)
class Escalation:
    """When and how the call goes to a person.

    Attributes:
        intents: intents that hand over at once (``human``; flows add e.g. complaint).
        angry: hand over on an angry tone.
        anger_turns: angry turns in a row before handing over.
        abusive: hand over on insults or profanity.
        max_misunderstandings: unhandled turns in a row before handing over.
        say: the handoff line by reason (an intent name, ``angry``, ``abusive``,
            ``misunderstood``, ``rule``, ``tool``, ``dtmf``) with ``default`` for the rest.
    """

    say: Mapping[str, Template]
    intents: frozenset[str] = frozenset({"human"})
    angry: bool = True
    anger_turns: int = 1
    abusive: bool = True
    max_misunderstandings: int = 3

    def line(self, reason: str) -> Template:
        """The handoff line for ``reason``."""
        return self.say.get(reason) or self.say["default"]


@dataclass(frozen=True, slots=True)
class Action:
    """Something the flow does for the caller (book a table, schedule a visit).

    Rules run it with ``do``; the LLM calls it as a tool.

    Attributes:
        name: the action (and tool) name.
        description: for the LLM tool.
        slots: slots that must be filled first.
        optional: slots it also takes.
        outcome: the outcome it records.
        goto: the stage to move to afterwards (any stage).
        say: what to say once done (when the stage moved to has no prompt of its own).
        end: hang up afterwards.
    """

    name: str
    description: str
    slots: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    outcome: str | None = None
    goto: str | None = None
    say: Template = ()
    end: bool = False


@dataclass(frozen=True, slots=True)
class Flow:
    """A whole conversation flow.

    Attributes:
        name: the flow's name (its file name without ``.json``).
        description: what the flow is for (told to the LLM).
        source: the file it came from.
        numbers: dialled numbers that select this flow.
        timezone: the business's time zone, for "today" and "tomorrow".
        parameters: custom parameters the templates use, with their defaults.
        customer_lookup: look the caller up in the customer directory.
        transfer: where escalations go (None: the responder's default).
        persona: who the bot is, for the LLM (a template).
        instructions: extra rules for the LLM (templates).
        greeting: greeting variants by call type (``default`` always present).
        start: the first stage.
        slots: the slots by name.
        stages: the stages by name.
        objections: the objections by name.
        global_rules: rules that apply in every stage (after the stage's own).
        escalation: when to hand over.
        actions: the actions by name.
        dtmf: keypad digits mapped to intents.
        outcomes: the outcomes the flow can record.
        default_outcome: the outcome of a call that ended without one.
        templates: shared lines: ``fallback``, ``llm_failure``, ``silence``,
            ``silence_goodbye``.
        intents: the flow-level intent set (common + flow + objections).
    """

    name: str
    description: str
    source: str
    start: str
    greeting: Mapping[str, Template]
    stages: Mapping[str, Stage]
    escalation: Escalation
    templates: Mapping[str, Template]
    intents: IntentSet
    numbers: tuple[str, ...] = ()
    timezone: ZoneInfo | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    customer_lookup: bool = False
    transfer: TransferTarget | None = None
    persona: str = ""
    instructions: tuple[str, ...] = ()
    slots: Mapping[str, SlotSpec] = field(default_factory=dict)
    objections: Mapping[str, Objection] = field(default_factory=dict)
    global_rules: tuple[Rule, ...] = ()
    actions: Mapping[str, Action] = field(default_factory=dict)
    dtmf: Mapping[str, str] = field(default_factory=dict)
    outcomes: frozenset[str] = frozenset()
    default_outcome: str | None = None
