"""Deepgram ``/v1/listen`` messages (SDK models) → our neutral speech events, in stream time.

Pure: no socket, no thread. Dispatch is on the message's ``type`` field, never on the
SDK class (the SDK parses by shape, and its fields are not validated, so every field
may be ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from realtime_voice.providers.base import (
    SpeechEvent,
    SpeechStarted,
    TranscriptResult,
    UtteranceEnd,
    Word,
)

__all__ = ["Decoded", "decode_message"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one message means for the stream.

    Attributes:
        event: the event to deliver, if any (empty interims are not delivered).
        covered_until: for a final result, the stream second up to which Deepgram has
            transcribed the audio (unclamped); audio before it need not be replayed.
        from_finalize: the result answers a Finalize.
        metadata: the Metadata message that ends a stream after CloseStream.
        error: the description of an Error message.
    """

    event: SpeechEvent | None = None
    covered_until: float | None = None
    from_finalize: bool = False
    metadata: bool = False
    error: str | None = None


def _float(value: Any) -> float:
    return float(value) if value is not None else 0.0


def decode_message(message: Any, *, base: float, floor: float) -> Decoded:
    """Interpret one message of a socket whose time 0 is stream second ``base``.

    Args:
        message: an SDK model from iterating the socket.
        base: stream seconds at which this socket's audio began (after a reconnect,
            where the replayed audio starts).
        floor: stream seconds covered by the final results already delivered; results
            are clamped to start there, and words wholly before it (replayed audio
            already transcribed) are dropped.

    Returns:
        Its meaning; an empty `Decoded` for messages that carry nothing for us.
    """
    kind = getattr(message, "type", None)
    if kind == "Results":
        return _decode_results(message, base, floor)
    if kind == "SpeechStarted":
        return Decoded(event=SpeechStarted(base + _float(message.timestamp)))
    if kind == "UtteranceEnd":
        return Decoded(event=UtteranceEnd(base + _float(message.last_word_end)))
    if kind == "Metadata":
        return Decoded(metadata=True)
    if kind == "Error":
        variant = getattr(message, "variant", None) or "Error"
        return Decoded(error=f"{variant}: {getattr(message, 'description', None) or ''}")
    return Decoded()


def _decode_results(message: Any, base: float, floor: float) -> Decoded:
    relative_start = _float(message.start)
    start = base + relative_start
    end = base + relative_start + _float(message.duration)
    is_final = bool(message.is_final)
    channel = getattr(message, "channel", None)
    alternatives = (getattr(channel, "alternatives", None) if channel is not None else None) or []
    alt = alternatives[0] if alternatives else None
    text = str(getattr(alt, "transcript", None) or "")
    confidence = _float(getattr(alt, "confidence", None))
    words = [
        Word(
            str(w.punctuated_word or w.word or ""),
            base + _float(w.start),
            base + _float(w.end),
            _float(w.confidence),
        )
        for w in (getattr(alt, "words", None) or [])
    ]
    if start < floor:
        kept = [w for w in words if w.end > floor]
        if len(kept) != len(words):
            words = kept
            text = " ".join(w.word for w in kept)
        start = floor
        end = max(end, start)
    event: TranscriptResult | None = None
    if text or is_final:
        event = TranscriptResult(
            text=text,
            is_final=is_final,
            speech_final=bool(message.speech_final),
            confidence=confidence,
            start=start,
            duration=end - start,
            words=tuple(words),
        )
    return Decoded(
        event=event,
        covered_until=base + relative_start + _float(message.duration) if is_final else None,
        from_finalize=bool(getattr(message, "from_finalize", False)),
    )
