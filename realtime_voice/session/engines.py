"""`SpeechEngines`: the process-wide providers and responder every call session draws from.

What they are is decided once, at start-up, by `realtime_voice.server.wiring` (offline
engines, Deepgram in front of them, the flow responder and its chat model); the
session sees only these factories.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ai_pipeline.customers import InMemoryCustomerDirectory
from ai_pipeline.responder import Responder
from realtime_voice.audio.format import AudioFormat
from realtime_voice.providers.base import SpeechToText, TextToSpeech
from realtime_voice.providers.deepgram_health import DeepgramHealth
from realtime_voice.providers.fallback_stt import FallbackSpeechToText
from realtime_voice.providers.line_cache import LineCache

__all__ = ["SpeechEngines", "SttFactory", "TtsFactory"]

log = logging.getLogger(__name__)


SttFactory = Callable[[AudioFormat], SpeechToText]
"""Makes a call's recogniser stream for the call's wire format (a stream that can take
those bytes as they are is opened for them: Deepgram with G.711)."""


class TtsFactory(Protocol):
    """Makes a call's synthesiser."""

    def __call__(self, fmt: AudioFormat, voice: str | None = None) -> TextToSpeech:
        """A synthesiser for ``fmt`` speaking with ``voice`` (None: the default)."""
        ...


@dataclass
class SpeechEngines:
    """Factories for per-call providers plus the shared responder and line cache.

    Attributes:
        make_stt: a new recogniser stream for one call, given its wire format.
        make_tts: a synthesiser bound to one call's wire format and, optionally, a voice
            (the call's ``voice`` custom parameter: an Aura model on Deepgram; the offline
            engine has one voice and ignores it).
        responder: decides what the bot says (shared by all calls).
        stt_name: provider name for health and logs.
        tts_name: provider name for health and logs.
        line_cache: audio of fixed lines.
        make_fallback_stt: the offline recogniser a call switches to when the primary
            cannot start (a bad key must never mean silence).
        health: Deepgram's cached health check, when Deepgram is in use.
        closers: coroutines run once at shutdown (client pools, health checks).
        customers: callers the flows greet by name (read ahead from the database).
    """

    make_stt: SttFactory
    make_tts: TtsFactory
    responder: Responder
    stt_name: str
    tts_name: str
    line_cache: LineCache = field(default_factory=LineCache)
    make_fallback_stt: SttFactory | None = None
    health: DeepgramHealth | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    customers: InMemoryCustomerDirectory = field(default_factory=InMemoryCustomerDirectory)

    @property
    def deepgram_status(self) -> str:
        """What the health endpoint reports for Deepgram (never waits on the network)."""
        return self.health.status if self.health is not None else "offline"

    def open_stt(self, fmt: AudioFormat) -> SpeechToText:
        """A new recogniser stream for one call (not started), backed by the offline
        recogniser when there is one to fall back to (a bad key must never mean silence)."""
        primary = self.make_stt(fmt)
        fallback = self.make_fallback_stt
        if fallback is None:
            return primary
        return FallbackSpeechToText(primary, lambda: fallback(fmt), primary_name=self.stt_name)

    async def aclose(self) -> None:
        """Release process-wide clients. Safe to call once at shutdown."""
        for close in self.closers:
            try:
                await close()
            except Exception:
                log.exception("closing a provider client failed")
        self.closers.clear()
