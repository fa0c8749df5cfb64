"""The chat-model interface the responders use (an OpenAI-compatible model behind it).

Kept provider-neutral so a flow responder can be tested with any implementation and the
OpenAI SDK stays inside one module.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["ChatMessage", "ChatModel", "LlmError", "TextDelta", "ToolCall", "ToolSpec"]


class LlmError(Exception):
    """The chat model failed (after the allowed retry) or missed its deadline."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation sent to the model.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: the text.
        tool_call_id: for ``tool`` messages, the call answered.
        tool_calls: for ``assistant`` messages that called tools.
    """

    role: str
    content: str = ""
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call (JSON-schema parameters)."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of the model's answer, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call (arguments already joined and parsed)."""

    id: str
    name: str
    arguments: Mapping[str, Any]


class ChatModel(Protocol):
    """A streaming chat model."""

    def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[TextDelta | ToolCall, None]:
        """Stream the answer: text fragments as they arrive, tool calls once complete.

        Consume it inside ``contextlib.aclosing`` so barge-in closes the HTTP stream at once.

        Raises:
            LlmError: the model failed or missed its deadline.
        """
        ...
