"""The `Responder` interface: one caller turn in, a stream of speech and actions out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from ai_pipeline.llm import LlmUsageMeter

__all__ = [
    "ConversationContext",
    "HandlesSilence",
    "HangupAction",
    "HistoryEntry",
    "Responder",
    "ResponseItem",
    "SayText",
    "TransferAction",
    "TransferTarget",
    "UserTurn",
]


@dataclass(frozen=True, slots=True)
class TransferTarget:
    """Where to hand the caller: exactly one of a phone number or an extension."""

    phone_number: str | None = None
    extension_number: str | None = None

    def __post_init__(self) -> None:
        if (self.phone_number is None) == (self.extension_number is None):
            raise ValueError("TransferTarget needs exactly one of phone_number or extension_number")

    def as_wire(self) -> dict[str, str]:
        """The RingCentral-style target object (``phoneNumber`` or ``extensionNumber``)."""
        if self.phone_number is not None:
            return {"phoneNumber": self.phone_number}
        assert self.extension_number is not None
        return {"extensionNumber": self.extension_number}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One utterance in the conversation so far.

    Attributes:
        speaker: ``caller`` or ``bot``.
        text: what was said. For an interrupted bot utterance, only what the caller
            actually heard.
        interrupted: the bot was cut off by barge-in.
    """

    speaker: Literal["caller", "bot"]
    text: str
    interrupted: bool = False


@dataclass
class ConversationContext:
    """What a responder knows about the call. Owned by the session; mutable by design.

    Attributes:
        call_id: the gateway call id.
        from_number: caller number (E.164), may be empty.
        to_number: dialled number.
        custom_parameters: from the gateway's ``start`` message.
        history: utterances so far, oldest first.
        state: free-form per-call scratch space for the responder (stage, slots...).
        usage: the call's meter, handed to the chat model with each request.
    """

    call_id: str
    from_number: str = ""
    to_number: str = ""
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    state: dict[str, object] = field(default_factory=dict)
    usage: LlmUsageMeter | None = None


@dataclass(frozen=True, slots=True)
class UserTurn:
    """One finished caller turn.

    Attributes:
        text: the final transcript of the turn (or a DTMF marker such as ``[dtmf 5]``).
        confidence: recogniser confidence 0..1.
        dtmf: the digit, when the turn is a keypress rather than speech.
    """

    text: str
    confidence: float = 1.0
    dtmf: str | None = None


@dataclass(frozen=True, slots=True)
class SayText:
    """Speak this text (a sentence or clause; sent to TTS as soon as it arrives).

    Attributes:
        text: what to say.
        cacheable: a fixed line said on many calls (handoff, goodbye): its audio is cached.
    """

    text: str
    cacheable: bool = False


@dataclass(frozen=True, slots=True)
class TransferAction:
    """Hand the caller to a human after what was said so far has played."""

    target: TransferTarget


@dataclass(frozen=True, slots=True)
class HangupAction:
    """End the call after what was said so far has played."""

    reason: str = "completed"


ResponseItem = SayText | TransferAction | HangupAction


class Responder(Protocol):
    """Decides what the bot says. One instance may serve many calls concurrently."""

    def greeting(self, ctx: ConversationContext) -> str:
        """The first thing the bot says once media starts."""
        ...

    def respond(self, turn: UserTurn, ctx: ConversationContext) -> AsyncIterator[ResponseItem]:
        """Answer one caller turn: speech chunks in order, then any action.

        The session cancels the iteration on barge-in; implementations must tolerate it.
        """
        ...


@runtime_checkable
class HandlesSilence(Protocol):
    """A responder that knows what to say when the caller goes quiet (optional)."""

    def silence(self, ctx: ConversationContext, *, final: bool = False) -> list[ResponseItem]:
        """A re-prompt; with ``final``, a goodbye ending in a `HangupAction`."""
        ...
