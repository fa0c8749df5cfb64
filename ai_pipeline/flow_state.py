"""Per-call flow state and the engine's answer for one turn."""

from __future__ import annotations

from dataclasses import dataclass, field

from ai_pipeline.responder import HangupAction, ResponseItem, SayText, TransferAction
from ai_pipeline.slot_values import SlotValue

__all__ = ["FlowState", "Step"]


@dataclass
class FlowState:
    """One call's progress through a flow (JSON-friendly apart from the spoken lines).

    Attributes:
        flow: the flow's name.
        stage: the current stage.
        call_type: ``inbound_existing``, ``inbound_new``, ``inbound_general`` or
            ``outbound``.
        params: template parameters: the flow's defaults, the call's custom parameters
            and the customer's details.
        slots: collected values by slot name.
        asking: the slot whose question was asked last, if any.
        misunderstandings: unhandled turns in a row.
        total_misunderstandings: unhandled turns in the call.
        angry_turns: angry turns in a row.
        turns: caller turns seen.
        outcome: the outcome so far.
        escalated: the call was handed to a person.
        escalation_reason: why (``human``, ``angry``, ``misunderstood``, ...).
        ended: the flow finished (hang-up or transfer said).
        final_action: the transfer or hang-up the flow ended with; repeated for any later
            turn, so a caller who talks over the goodbye is still transferred or hung up
            rather than left on a silent line.
        objections: objections raised, in order.
        actions: actions completed, in order.
        stages: the stages visited, in order (starting with the first).
        last_said: the last lines said, for "repeat that".
        rotation: template variant counters.
        customer_id: the directory's id for a known caller.
        default_outcome: the flow's outcome for a call that ended without one.
    """

    flow: str
    stage: str
    call_type: str
    params: dict[str, str]
    slots: dict[str, SlotValue] = field(default_factory=dict)
    asking: str | None = None
    misunderstandings: int = 0
    total_misunderstandings: int = 0
    angry_turns: int = 0
    turns: int = 0
    outcome: str | None = None
    escalated: bool = False
    escalation_reason: str | None = None
    ended: bool = False
    final_action: TransferAction | HangupAction | None = None
    objections: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    last_said: list[SayText] = field(default_factory=list)
    rotation: dict[str, int] = field(default_factory=dict)
    customer_id: str | None = None
    default_outcome: str | None = None


@dataclass
class Step:
    """What the engine decided for one turn.

    Attributes:
        items: lines to say (one `SayText` per sentence), then at most one action.
        handled: the flow understood the turn (False: ask the LLM or fall back).
        events: what changed, for logs and tests ("stage intro -> discovery",
            "slot purpose = own_use", "objection family_approval", "action ...").
    """

    items: list[ResponseItem] = field(default_factory=list)
    handled: bool = True
    events: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything said, joined (for logs and tests)."""
        return " ".join(item.text for item in self.items if isinstance(item, SayText))
