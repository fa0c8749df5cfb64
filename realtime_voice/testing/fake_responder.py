"""`ScriptedResponder`: a `Responder` that answers from a table, for session tests.

Each caller turn is matched against the table's keys (a key the turn's text contains,
case-insensitively; the first match wins) and answered with that entry's items, one
at a time with ``line_delay_s`` between them (an LLM streaming sentences). A turn
that matches nothing gets ``fallback``. Silence prompts, when given, make it a
`HandlesSilence` responder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from ai_pipeline.responder import (
    ConversationContext,
    HangupAction,
    ResponseItem,
    SayText,
    UserTurn,
)

__all__ = ["ScriptedResponder", "SilentScriptedResponder"]


@dataclass
class SilentScriptedResponder:
    """Answers from ``replies``; knows nothing of silence (see `ScriptedResponder`).

    Attributes:
        greeting_text: what the bot says first.
        replies: turn text fragment → the items to answer with.
        fallback: the answer to a turn that matches nothing.
        line_delay_s: pause before each item (model latency).
        turns: every turn received, in order.
    """

    greeting_text: str = "Hello, how can I help?"
    replies: Mapping[str, Sequence[ResponseItem]] = field(default_factory=dict)
    fallback: Sequence[ResponseItem] = (SayText("I see."),)
    line_delay_s: float = 0.0
    turns: list[UserTurn] = field(default_factory=list)

    def greeting(self, ctx: ConversationContext) -> str:
        """The greeting."""
        return self.greeting_text

    async def respond(
        self, turn: UserTurn, ctx: ConversationContext
    ) -> AsyncIterator[ResponseItem]:
        """The table's answer to ``turn``."""
        self.turns.append(turn)
        items = self.fallback
        text = turn.text.lower()
        for key, answer in self.replies.items():
            if key.lower() in text:
                items = answer
                break
        for item in items:
            if self.line_delay_s > 0:
                await asyncio.sleep(self.line_delay_s)
            yield item


@dataclass
class ScriptedResponder(SilentScriptedResponder):
    """A `SilentScriptedResponder` that also re-prompts a silent caller, then hangs up.

    Attributes:
        reprompt: said after each silence but the last.
        goodbye: said after the last silence, then a `HangupAction` ("silence").
        silences: the ``final`` flag of every silence prompt asked for.
    """

    reprompt: str = "Are you still there?"
    goodbye: str = "I'll let you go. Goodbye."
    silences: list[bool] = field(default_factory=list)

    def silence(self, ctx: ConversationContext, *, final: bool = False) -> list[ResponseItem]:
        """A re-prompt, or the goodbye and hang-up."""
        self.silences.append(final)
        if final:
            return [SayText(self.goodbye), HangupAction("silence")]
        return [SayText(self.reprompt)]
