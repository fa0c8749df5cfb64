"""The chat-model interface the responders use (an OpenAI-compatible model behind it).

Kept provider-neutral so a flow responder can be tested with any implementation and the
OpenAI SDK stays inside one module.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ChatMessage",
    "ChatModel",
    "LlmError",
    "LlmUsageMeter",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
]


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


class LlmUsageMeter(Protocol):
    """What a chat model reports to the call it serves (the call's meter implements it).

    Passed in with each request rather than found in a context variable, so the
    pipeline depends on nothing of the server's and a test can hand in its own.
    """

    def llm_request_started(self) -> float:
        """A request starts now; returns the start time to give `llm_first_token`."""
        ...

    def llm_first_token(self, started_at: float) -> None:
        """The request started at ``started_at`` streamed its first token now."""
        ...

    def llm_failed(self) -> None:
        """A request failed for good (the responder falls back)."""
        ...

    def llm_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """A request finished and reported the tokens it was billed."""
        ...


class ChatModel(Protocol):
    """A streaming chat model."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        meter: LlmUsageMeter | None = None,
        call_id: str = "",
    ) -> AsyncGenerator[TextDelta | ToolCall, None]:
        """Stream the answer: text fragments as they arrive, tool calls once complete.

        Consume it inside ``contextlib.aclosing`` so barge-in closes the HTTP stream at once.
        ``meter`` (the call's) hears of the request's latency, failure and tokens;
        ``call_id`` labels the usage records.

        Raises:
            LlmError: the model failed or missed its deadline.
        """
        ...
