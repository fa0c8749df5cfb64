"""What one call consumed from paid providers, what that cost, and how long it waited on them.

The session owns one `CallMeter` per call and hands it to the responder in the call's
`ConversationContext.usage`; the responder passes it with each chat-model request, so a
model client shared by every call charges the right call without knowing about sessions
(it sees only the `ai_pipeline.llm.LlmUsageMeter` interface this class implements).

Quantities are what the providers bill by: seconds of audio streamed to a paid
recogniser, characters sent to a paid voice, prompt and completion tokens. `Prices` turns
them into an estimate; the real invoice may round differently (Deepgram bills per second
of stream, some contracts per minute), so the figure is for watching trends and
budgets, not for billing customers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from realtime_voice.config import Settings

__all__ = [
    "BILLED_PROVIDERS",
    "CallMeter",
    "CallUsage",
    "Prices",
]

BILLED_PROVIDERS = frozenset({"deepgram"})
"""Speech providers whose use costs money (the offline engines cost nothing per call)."""


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollar prices per unit of usage (configurable; defaults are public list prices).

    Attributes:
        stt_per_minute: streaming recognition, per minute of audio.
        tts_per_1k_chars: synthesis, per thousand characters.
        llm_input_per_1m_tokens: chat model prompt tokens, per million.
        llm_output_per_1m_tokens: chat model completion tokens, per million.
        telephony_per_minute: the carrier's per-minute charge, per minute of call.
    """

    stt_per_minute: float = 0.0077
    tts_per_1k_chars: float = 0.030
    llm_input_per_1m_tokens: float = 0.15
    llm_output_per_1m_tokens: float = 0.60
    telephony_per_minute: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices:
        """The prices configured with ``VOICE_PRICE_*``."""
        return cls(
            stt_per_minute=settings.price_stt_per_minute,
            tts_per_1k_chars=settings.price_tts_per_1k_chars,
            llm_input_per_1m_tokens=settings.price_llm_input_per_1m_tokens,
            llm_output_per_1m_tokens=settings.price_llm_output_per_1m_tokens,
            telephony_per_minute=settings.price_telephony_per_minute,
        )


@dataclass(slots=True)
class CallUsage:
    """Billable quantities of one call.

    Attributes:
        call_seconds: the call's length (for the telephony price).
        stt_audio_seconds: audio streamed to a paid recogniser.
        tts_characters: characters sent to a paid voice (cached lines are free).
        llm_requests: chat model requests that reported usage.
        llm_prompt_tokens: prompt tokens over those requests.
        llm_completion_tokens: completion tokens over those requests.
    """

    call_seconds: float = 0.0
    stt_audio_seconds: float = 0.0
    tts_characters: int = 0
    llm_requests: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0

    def cost_breakdown(self, prices: Prices) -> dict[str, float]:
        """Estimated dollars per provider and in total (unrounded)."""
        parts = {
            "stt": self.stt_audio_seconds / 60.0 * prices.stt_per_minute,
            "tts": self.tts_characters / 1000.0 * prices.tts_per_1k_chars,
            "llm": (
                self.llm_prompt_tokens / 1e6 * prices.llm_input_per_1m_tokens
                + self.llm_completion_tokens / 1e6 * prices.llm_output_per_1m_tokens
            ),
            "telephony": self.call_seconds / 60.0 * prices.telephony_per_minute,
        }
        parts["total"] = sum(parts.values())
        return parts

    def as_record(self, prices: Prices) -> dict[str, object]:
        """The usage and its cost as stored with the call (JSON-able, rounded)."""
        cost = self.cost_breakdown(prices)
        return {
            "call_seconds": round(self.call_seconds, 3),
            "stt_audio_seconds": round(self.stt_audio_seconds, 3),
            "tts_characters": self.tts_characters,
            "llm_requests": self.llm_requests,
            "llm_prompt_tokens": self.llm_prompt_tokens,
            "llm_completion_tokens": self.llm_completion_tokens,
            "cost_usd": {name: round(value, 6) for name, value in cost.items()},
        }


class CallMeter:
    """One call's usage plus the provider waits of the turn being answered.

    The waits let the session separate the time a turn spent waiting on providers from
    the time the server itself added (the figure capacity planning cares about).

    Args:
        clock: monotonic clock (the session's, so both measure the same time line).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.usage = CallUsage()
        self.llm_started_at: float | None = None
        """When this turn's first chat model request started (monotonic)."""
        self.llm_first_token_s: float | None = None
        """Request start → first streamed token of this turn's first request."""
        self.on_error: Callable[[Literal["llm"]], None] | None = None
        """Told when a provider client failed for this call (the session counts it)."""

    def new_turn(self) -> None:
        """Forget the previous turn's waits."""
        self.llm_started_at = None
        self.llm_first_token_s = None

    def llm_request_started(self) -> float:
        """A chat model request starts now; returns the start time for `llm_first_token`."""
        now = self._clock()
        if self.llm_started_at is None:
            self.llm_started_at = now
        return now

    def llm_first_token(self, started_at: float) -> None:
        """The request started at ``started_at`` streamed its first token now."""
        if self.llm_first_token_s is None:
            self.llm_first_token_s = self._clock() - started_at

    def llm_failed(self) -> None:
        """A chat model request failed for good (the responder falls back)."""
        if self.on_error is not None:
            self.on_error("llm")

    def llm_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """A request finished and reported the tokens it was billed."""
        self.usage.llm_requests += 1
        self.usage.llm_prompt_tokens += prompt_tokens
        self.usage.llm_completion_tokens += completion_tokens

