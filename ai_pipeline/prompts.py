"""What the LLM is told: the system prompt, the recent history and the tools.

The system prompt is rebuilt every turn from the flow (persona, description,
instructions), the current stage's goal, the slots collected and still needed, the
caller and the date, so the model always sees where the conversation is. History
carries only what the caller heard: an interrupted bot line is cut where the caller
cut it (the session records it so) and marked with an ellipsis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_state import FlowState
from ai_pipeline.llm import ChatMessage, ToolSpec
from ai_pipeline.nlp.dates import speak_date, speak_time
from ai_pipeline.responder import HistoryEntry
from ai_pipeline.slot_values import speak_slot_value, tool_property
from ai_pipeline.templates import FieldValue, render

__all__ = [
    "END_CALL_TOOL",
    "TRANSFER_TOOL",
    "build_messages",
    "build_system_prompt",
    "tool_specs",
]

TRANSFER_TOOL: Final = "transfer_to_human"
END_CALL_TOOL: Final = "end_call"

_VOICE_RULES: Final = (
    "This is a live phone call and everything you write is spoken aloud. Reply in one to "
    "three short sentences of plain spoken language: no lists, no markdown, no emoji, no "
    "links. Say numbers, times and amounts the way a person says them. Ask at most one "
    "question at a time."
)
_TOOL_RULES: Final = (
    f"If the caller asks for a person, is upset, or needs something you cannot do, call "
    f"{TRANSFER_TOOL}. When the caller is finished, say a short goodbye and call "
    f"{END_CALL_TOOL}. Call an action tool only once the caller has agreed and you have "
    "every detail it needs; never claim something is booked unless you called the tool."
)


def _render_line(line: str, values: Mapping[str, FieldValue]) -> str:
    rendered = render((line,), values, {}, "prompt")
    return rendered.text if rendered is not None else ""


def build_system_prompt(
    flow: Flow, state: FlowState, values: Mapping[str, FieldValue], now: dt.datetime
) -> str:
    """The system prompt for the current turn.

    Args:
        flow: the call's flow.
        state: the call's state.
        values: template field values (see `FlowEngine.field_values`).
        now: the caller's current time.

    Returns:
        The prompt text.
    """
    parts: list[str] = []
    if flow.persona:
        parts.append(_render_line(flow.persona, values))
    parts.append(f"About this call: {flow.description}")
    zone = f" ({flow.timezone.key})" if flow.timezone is not None else ""
    parts.append(f"It is {speak_date(now.date())} {now.year}, {speak_time(now.time())}{zone}.")
    for line in flow.instructions:
        text = _render_line(line, values)
        if text:
            parts.append(text)
    customer = state.params.get("customer_name", "").strip()
    if customer:
        parts.append(f"The caller is {customer}.")
    stage = flow.stages[state.stage]
    if stage.goal:
        parts.append(f"Current step ({stage.name.replace('_', ' ')}): {stage.goal}")
    collected = [
        f"{name.replace('_', ' ')}: {speak_slot_value(flow.slots[name], value)}"
        for name, value in state.slots.items()
        if name in flow.slots
    ]
    if collected:
        parts.append("Known so far: " + "; ".join(collected) + ".")
    missing = [
        f"{name.replace('_', ' ')} ({flow.slots[name].description or name})"
        for name in stage.collect
        if name not in state.slots
    ]
    if missing:
        parts.append("Still needed in this step: " + "; ".join(missing) + ".")
    if "documents" in flow.parameters:
        documents = state.params.get("documents", "").strip()
        if documents:
            parts.append(f"Documents (your only source of facts):\n{documents}")
        else:
            parts.append("You were given no documents: do not answer factual questions.")
    parts.append(_VOICE_RULES)
    parts.append(_TOOL_RULES)
    return "\n\n".join(part for part in parts if part)


def build_messages(
    system: str, history: Sequence[HistoryEntry], turn_text: str, *, limit: int = 12
) -> list[ChatMessage]:
    """System prompt, the last ``limit`` utterances, and the caller's turn.

    Args:
        system: the system prompt.
        history: the conversation so far (the session appends the current turn
            before asking for a reply; it is not repeated).
        turn_text: the caller's turn (added when the history does not end with it).
        limit: utterances of history to keep.

    Returns:
        The messages for the chat model.
    """
    messages = [ChatMessage("system", system)]
    recent = list(history)[-limit:] if limit > 0 else []
    for entry in recent:
        text = entry.text.strip()
        if not text:
            continue
        if entry.speaker == "bot":
            messages.append(ChatMessage("assistant", text + ("…" if entry.interrupted else "")))
        else:
            messages.append(ChatMessage("user", text))
    last = recent[-1] if recent else None
    if turn_text.strip() and not (
        last is not None and last.speaker == "caller" and last.text.strip() == turn_text.strip()
    ):
        messages.append(ChatMessage("user", turn_text.strip()))
    return messages


def tool_specs(flow: Flow) -> tuple[ToolSpec, ...]:
    """The tools offered to the model: hand-over, hang-up and the flow's actions."""
    specs = [
        ToolSpec(
            TRANSFER_TOOL,
            "Hand the caller over to a person from the team.",
            _object({"reason": {"type": "string", "description": "why, in a few words"}}),
        ),
        ToolSpec(
            END_CALL_TOOL,
            "End the call after saying goodbye.",
            _object({"reason": {"type": "string", "description": "why, in a few words"}}),
        ),
    ]
    for action in flow.actions.values():
        properties = {
            name: tool_property(flow.slots[name]) for name in (*action.slots, *action.optional)
        }
        specs.append(ToolSpec(action.name, action.description, _object(properties, action.slots)))
    return tuple(specs)


def _object(properties: Mapping[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return schema
