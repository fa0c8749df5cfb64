"""Handshake queries of the Deepgram simulator, validated the way Deepgram does (400 otherwise)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from realtime_voice.audio.format import AudioEncoding, AudioFormat

__all__ = ["ListenQuery", "QueryError"]

_KNOWN_PARAMS: Final = frozenset(
    {
        "callback", "callback_method", "channels", "detect_entities", "diarize",
        "diarize_model", "dictation", "encoding", "endpointing", "extra", "interim_results",
        "keyterm", "keywords", "language", "language_hint", "mip_opt_out", "model",
        "multichannel", "numerals", "profanity_filter", "punctuate", "redact", "replace",
        "sample_rate", "search", "smart_format", "tag", "utterance_end_ms", "vad_events",
        "version",
    }
)  # fmt: skip
_ENCODINGS: Final = {
    "linear16": AudioEncoding.PCM16,
    "mulaw": AudioEncoding.MULAW,
    "alaw": AudioEncoding.ALAW,
}


class QueryError(ValueError):
    """The handshake query is invalid (answered with HTTP 400)."""


def _bool(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise QueryError(f"{name}={raw!r}: expected true or false")
    return raw.lower() == "true"


def _int(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name}={raw!r}: expected an integer") from None
    if not low <= value <= high:
        raise QueryError(f"{name}={value}: expected {low}..{high}")
    return value


@dataclass(frozen=True, slots=True)
class ListenQuery:
    """The options of one stream, validated."""

    model: str
    language: str
    audio_format: AudioFormat
    interim_results: bool
    endpointing_ms: int | None
    utterance_end_ms: int | None
    vad_events: bool
    punctuate: bool
    keyterms: tuple[str, ...]

    @classmethod
    def parse(cls, query: Mapping[str, str], keyterms: list[str]) -> ListenQuery:
        """Validate a handshake query (single values; ``keyterm`` may repeat).

        Raises:
            QueryError: a missing model, an unknown parameter or a bad value.
        """
        unknown = sorted(set(query) - _KNOWN_PARAMS)
        if unknown:
            raise QueryError(f"unknown parameter(s): {', '.join(unknown)}")
        model = query.get("model", "").strip()
        if not model:
            raise QueryError("model is required")
        encoding_name = query.get("encoding", "linear16").lower()
        encoding = _ENCODINGS.get(encoding_name)
        if encoding is None:
            raise QueryError(
                f"encoding={encoding_name!r}: the simulator takes linear16, mulaw or alaw"
            )
        rate = _int(query, "sample_rate", 1, 192000)
        if rate is None:
            raise QueryError("sample_rate is required for raw (containerless) audio")
        if rate not in (8000, 16000):
            raise QueryError(f"sample_rate={rate}: the simulator takes 8000 or 16000")
        if (_int(query, "channels", 1, 16) or 1) != 1:
            raise QueryError("channels: the simulator takes mono audio only")
        raw_endpointing = query.get("endpointing", "10")
        endpointing: int | None
        if raw_endpointing.lower() == "false":
            endpointing = None
        else:
            endpointing = _int({"endpointing": raw_endpointing}, "endpointing", 10, 10000)
        utterance_end = _int(query, "utterance_end_ms", 1, 60000)
        interim = _bool(query, "interim_results", False)
        if utterance_end is not None and not interim:
            raise QueryError("utterance_end_ms requires interim_results=true")
        for flag in ("smart_format", "vad_events", "punctuate", "numerals", "diarize"):
            _bool(query, flag, False)
        return cls(
            model=model,
            language=query.get("language", "en"),
            audio_format=AudioFormat(encoding, rate, 1),
            interim_results=interim,
            endpointing_ms=endpointing,
            utterance_end_ms=utterance_end,
            vad_events=_bool(query, "vad_events", False),
            punctuate=_bool(query, "punctuate", False) or _bool(query, "smart_format", False),
            keyterms=tuple(keyterms),
        )
