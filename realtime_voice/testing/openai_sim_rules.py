"""How the OpenAI simulator picks a reply when no scripted one is queued.

Keyword rules on the last user message stand in for a model: good enough to drive a
whole conversation in load tests and demos. A rule answers with a tool call when the
request offers a tool of that name (the way a model given tools would act), and with
its text otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from realtime_voice.testing.openai_sim_wire import SimReply, SimToolCall, message_text

__all__ = ["AFTER_TOOL_TEXT", "DEFAULT_RULES", "FALLBACK_TEXT", "Rule", "choose_reply"]

FALLBACK_TEXT = "Sure, I can help with that. Could you tell me a little more about what you need?"
"""The answer when no rule matches."""

AFTER_TOOL_TEXT = "All done. Is there anything else I can help you with?"
"""The answer right after a tool result, so a tool loop always ends."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Keywords on the last user message → a reply.

    Attributes:
        keywords: whole words or phrases, matched case-insensitively; any one matches.
        text: the reply when the rule's tool is not offered (or there is none).
        tool: called instead when the request offers a tool with this name.
    """

    keywords: tuple[str, ...]
    text: str
    tool: SimToolCall | None = None

    def matches(self, utterance: str) -> bool:
        """Whether any keyword occurs in ``utterance`` as whole words."""
        lowered = utterance.lower()
        return any(re.search(rf"\b{re.escape(k.lower())}\b", lowered) for k in self.keywords)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        ("manager", "supervisor", "human", "real person", "representative", "someone else"),
        "Of course. Let me connect you with someone from our team.",
        SimToolCall("transfer_to_human", {"reason": "the caller asked for a person"}),
    ),
    Rule(
        ("goodbye", "bye", "that's all", "that is all"),
        "Thank you for calling. Goodbye!",
        SimToolCall("end_call", {"reason": "the caller said goodbye"}),
    ),
    Rule(
        ("appointment", "schedule", "reschedule"),
        "I can book that for you. Which day and time work best?",
        SimToolCall(
            "schedule_appointment",
            {
                "service_type": "maintenance",
                "preferred_date": "tomorrow",
                "preferred_time": "10:00",
            },
        ),
    ),
    Rule(
        ("site visit", "visit the property", "see the property"),
        "Happy to arrange a site visit. Would this Saturday work for you?",
        SimToolCall("book_site_visit", {"date": "Saturday", "time": "11:00"}),
    ),
    Rule(
        ("table", "reservation", "reserve"),
        "I'd be glad to book a table. For how many people, and when?",
        SimToolCall("book_table", {"party_size": 2, "date": "tomorrow", "time": "19:00"}),
    ),
    Rule(
        ("hours", "open", "close", "closing"),
        "We're open from nine in the morning until nine at night, every day. "
        "Is there anything else I can help you with?",
    ),
    Rule(
        ("price", "cost", "how much"),
        "Prices depend on what you need. I can have someone send you a detailed quote.",
    ),
)


def _offered_tools(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping):
            function = tool.get("function")
            if isinstance(function, Mapping) and isinstance(function.get("name"), str):
                names.add(function["name"])
    return names


def choose_reply(body: Mapping[str, Any], rules: Sequence[Rule] = DEFAULT_RULES) -> SimReply:
    """The reply a rule-driven model gives to one request.

    Args:
        body: the parsed request (``messages``, optional ``tools``).
        rules: checked in order; the first match wins.

    Returns:
        A tool call when the first matching rule's tool is offered, the rule's text
        otherwise, `AFTER_TOOL_TEXT` right after a tool result, or `FALLBACK_TEXT`.
    """
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    if messages and messages[-1].get("role") == "tool":
        return SimReply(AFTER_TOOL_TEXT)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    utterance = message_text(last_user) if last_user is not None else ""
    offered = _offered_tools(body)
    for rule in rules:
        if rule.matches(utterance):
            if rule.tool is not None and rule.tool.name in offered:
                return SimReply(tool_calls=(rule.tool,))
            return SimReply(rule.text)
    return SimReply(FALLBACK_TEXT)
