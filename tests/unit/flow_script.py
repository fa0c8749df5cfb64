"""Scripted calls through a `FlowResponder`, as the session drives it (text turns)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ai_pipeline.flow_responder import FlowResponder
from ai_pipeline.flow_state import FlowState
from ai_pipeline.responder import (
    ConversationContext,
    HangupAction,
    HistoryEntry,
    ResponseItem,
    SayText,
    TransferAction,
    UserTurn,
)
from ai_pipeline.text_split import split_sentences

NOW = dt.datetime(2025, 6, 11, 14, 0, tzinfo=dt.UTC)
"""A Wednesday (in New York and in Kolkata alike)."""


def fixed_clock() -> dt.datetime:
    return NOW


@dataclass
class Reply:
    """What the bot did for one turn."""

    items: list[ResponseItem]

    @property
    def lines(self) -> list[str]:
        return [item.text for item in self.items if isinstance(item, SayText)]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def action(self) -> TransferAction | HangupAction | None:
        actions = [item for item in self.items if not isinstance(item, SayText)]
        return actions[-1] if actions else None


@dataclass
class Call:
    """One call: the greeting, then `say` per caller turn."""

    responder: FlowResponder
    ctx: ConversationContext
    greeting: str = ""
    replies: list[Reply] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        responder: FlowResponder,
        *,
        from_number: str = "",
        to_number: str = "",
        **custom: str,
    ) -> Call:
        ctx = ConversationContext(
            call_id="call-1", from_number=from_number, to_number=to_number,
            custom_parameters=custom,
        )  # fmt: skip
        call = cls(responder, ctx)
        call.greeting = responder.greeting(ctx)
        ctx.history.append(HistoryEntry("bot", call.greeting))
        return call

    async def say(self, text: str = "", *, dtmf: str | None = None) -> Reply:
        if dtmf is None:
            self.ctx.history.append(HistoryEntry("caller", text))
            turn = UserTurn(text)
        else:
            turn = UserTurn(f"[dtmf {dtmf}]", dtmf=dtmf)
        items = [item async for item in self.responder.respond(turn, self.ctx)]
        reply = Reply(items)
        check_shape(reply)
        if reply.text:
            self.ctx.history.append(HistoryEntry("bot", reply.text))
        self.replies.append(reply)
        return reply

    @property
    def state(self) -> FlowState:
        state = self.ctx.state["flow"]
        assert isinstance(state, FlowState)
        return state


def check_shape(reply: Reply) -> None:
    """Speech first, one sentence per SayText, at most one action, last."""
    kinds = [isinstance(item, SayText) for item in reply.items]
    assert kinds.count(False) <= 1
    if False in kinds:
        assert kinds[-1] is False
    for line in reply.lines:
        assert line.strip() == line and line
        assert split_sentences(line, max_clause_chars=1000, max_chars=1000) == [line], line
