"""What the Deepgram STT bridge asks Deepgram for, and how hard it tries to stay connected.

`DeepgramSttOptions` becomes the ``/v1/listen`` query (through the SDK's keyword
arguments); `ReconnectPolicy` is the bridge's tenacity schedule. Both are frozen and
validated at construction, so a bad setting fails when the server starts, not mid-call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from realtime_voice.audio.format import AudioEncoding, AudioFormat

__all__ = ["SUPPORTED_ENCODINGS", "DeepgramSttOptions", "ReconnectPolicy", "SttEncoding"]

SttEncoding = Literal["linear16", "mulaw", "alaw"]
"""Encodings the bridge can send (the telephony ones plus our 16 kHz PCM)."""

SUPPORTED_ENCODINGS: Final[dict[str, tuple[int, ...]]] = {
    "linear16": (16000, 8000),
    "mulaw": (8000,),
    "alaw": (8000,),
}
"""Encoding → sample rates the bridge produces for it."""


@dataclass(frozen=True, slots=True)
class DeepgramSttOptions:
    """Query options of one streaming recognition (``/v1/listen``).

    Attributes:
        model: Deepgram model (``nova-3``; ``keyterms`` need a Nova-3 model).
        language: BCP-47 tag, e.g. ``en-US``.
        encoding: ``linear16`` sends the AudioProcessor's 16 kHz PCM as is; ``mulaw``
            (or ``alaw``) sends 8 kHz G.711, i.e. the telephone wire format (passthrough
            when the call's own bytes are handed over, see `DeepgramSpeechToText.send_wire`).
        sample_rate: Hz of what is sent: 16000 (or 8000) for linear16, 8000 for G.711.
        interim_results: ask for interim transcripts (needed by ``utterance_end_ms``).
        endpointing: ms of silence that end speech (``speech_final``), or False to disable.
        utterance_end_ms: gap after the last word that produces ``UtteranceEnd``; None off.
        vad_events: ask for ``SpeechStarted`` (used for barge-in).
        smart_format: Deepgram's formatting of numbers, dates and so on.
        punctuate: punctuation and capitals.
        keyterms: words to boost (business names, menu items); Nova-3 only.

    Raises:
        ValueError: an unsupported encoding/rate pair or an out-of-range value.
    """

    model: str = "nova-3"
    language: str = "en-US"
    encoding: SttEncoding = "linear16"
    sample_rate: int = 16000
    interim_results: bool = True
    endpointing: int | Literal[False] = 300
    utterance_end_ms: int | None = 1000
    vad_events: bool = True
    smart_format: bool = True
    punctuate: bool = True
    keyterms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ValueError("Deepgram model must not be empty")
        rates = SUPPORTED_ENCODINGS.get(self.encoding)
        if rates is None:
            raise ValueError(
                f"Deepgram STT encoding {self.encoding!r}: expected one of "
                + ", ".join(SUPPORTED_ENCODINGS)
            )
        if self.sample_rate not in rates:
            raise ValueError(
                f"Deepgram STT {self.encoding} at {self.sample_rate} Hz: expected "
                + " or ".join(str(r) for r in rates)
            )
        if self.endpointing is not False and (
            isinstance(self.endpointing, bool) or self.endpointing < 10
        ):
            raise ValueError(f"endpointing must be ≥ 10 ms or False, not {self.endpointing!r}")
        if self.utterance_end_ms is not None:
            if self.utterance_end_ms <= 0:
                raise ValueError(f"utterance_end_ms must be positive, not {self.utterance_end_ms}")
            if not self.interim_results:
                raise ValueError("utterance_end_ms needs interim_results=True")
        if any(not term.strip() for term in self.keyterms):
            raise ValueError("keyterms must not contain empty terms")

    def for_passthrough(self, wire: AudioFormat) -> DeepgramSttOptions:
        """These options changed to send a G.711 call's own bytes (no decode, no resample).

        Args:
            wire: the call's wire format; mu-law or A-law at 8 kHz, mono.

        Raises:
            ValueError: the wire format cannot be passed through.
        """
        if wire.encoding is AudioEncoding.PCM16 or wire.sample_rate != 8000 or wire.channels != 1:
            raise ValueError(
                f"cannot pass {wire.encoding.value}/{wire.sample_rate}/{wire.channels} through"
            )
        encoding: SttEncoding = "mulaw" if wire.encoding is AudioEncoding.MULAW else "alaw"
        return replace(self, encoding=encoding, sample_rate=8000)

    def for_call(self, wire: AudioFormat) -> DeepgramSttOptions:
        """The options for a call arriving in ``wire``.

        G.711 at 8 kHz mono (what telephony gateways send) is passed through
        (`for_passthrough`); any other format is converted to these options' encoding.
        """
        if wire.encoding is AudioEncoding.PCM16 or wire.sample_rate != 8000 or wire.channels != 1:
            return self
        return self.for_passthrough(wire)

    @property
    def wire_format(self) -> AudioFormat:
        """The audio format of the bytes this stream sends."""
        encoding = {
            "linear16": AudioEncoding.PCM16,
            "mulaw": AudioEncoding.MULAW,
            "alaw": AudioEncoding.ALAW,
        }[self.encoding]
        return AudioFormat(encoding, self.sample_rate, 1)

    @property
    def bytes_per_second(self) -> int:
        """Bytes of audio per second of speech sent."""
        return self.sample_rate * (2 if self.encoding == "linear16" else 1)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.listen.v1.connect`` (None options omitted)."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "language": self.language,
            "encoding": self.encoding,
            "sample_rate": self.sample_rate,
            "channels": 1,
            "interim_results": self.interim_results,
            "endpointing": self.endpointing,
            "vad_events": self.vad_events,
            "smart_format": self.smart_format,
            "punctuate": self.punctuate,
        }
        if self.utterance_end_ms is not None:
            kwargs["utterance_end_ms"] = self.utterance_end_ms
        if self.keyterms:
            kwargs["keyterm"] = list(self.keyterms)
        return kwargs


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How the bridge reconnects after a retryable failure (tenacity underneath).

    Waits grow as ``initial_s·2ⁿ`` plus up to ``jitter_s`` of random jitter, capped at
    ``max_wait_s``. At most ``max_attempts`` connection attempts are made in a row; a
    connection that stayed up for ``stable_after_s`` and answered earns a fresh budget (and
    its first reconnect is immediate). A connection that takes audio and answers nothing
    is dropped as stalled; ``max_stalls`` of them in a row end the stream.

    Attributes:
        max_attempts: connection attempts in a row before the stream fails.
        initial_s: first wait.
        max_wait_s: cap on any single wait.
        jitter_s: random extra wait, so many calls do not reconnect in lockstep.
        stable_after_s: uptime after which a connection counts as stable.
        max_stalls: stalled connections in a row before the stream fails.

    Raises:
        ValueError: a non-positive value.
    """

    max_attempts: int = 5
    initial_s: float = 0.25
    max_wait_s: float = 5.0
    jitter_s: float = 0.25
    stable_after_s: float = 5.0
    max_stalls: int = 2

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_stalls < 1:
            raise ValueError("max_attempts and max_stalls must be at least 1")
        if min(self.initial_s, self.max_wait_s, self.stable_after_s) <= 0 or self.jitter_s < 0:
            raise ValueError("reconnect waits must be positive (jitter ≥ 0)")
