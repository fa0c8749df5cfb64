"""The JSON the Deepgram simulator sends, in the exact shapes of the real ``/v1/listen`` API.

Shapes follow docs/DEEPGRAM_OPENAI.md §1a (Results, SpeechStarted, UtteranceEnd,
Metadata, Error). Pure functions of their arguments, so tests can compare them with
captured messages field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MODEL_UUID",
    "ModelInfo",
    "error_message",
    "metadata_message",
    "plain_transcript",
    "results_message",
    "speech_started_message",
    "timed_words",
    "transcript_message",
    "utterance_end_message",
]

MODEL_UUID: Final = "1ed36bac-f71c-4f3f-a31f-02fd6525c489"
"""A fixed model id (the real one changes with model versions)."""

_WORD_EDGE = re.compile(r"^\W+|\W+$")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Model identification repeated in every Results message.

    Attributes:
        request_id: the stream's id (also in Metadata).
        arch: the requested model, e.g. ``nova-3``.
    """

    request_id: str
    arch: str

    def as_json(self) -> dict[str, Any]:
        """The ``metadata`` object of a Results message."""
        return {
            "request_id": self.request_id,
            "model_info": {
                "name": f"general-{self.arch}",
                "version": "2025-01-01.0",
                "arch": self.arch,
            },
            "model_uuid": MODEL_UUID,
        }


def timed_words(
    text: str,
    start: float,
    end: float,
    confidence: float,
    *,
    punctuate: bool,
) -> list[dict[str, Any]]:
    """Words of ``text`` spread over ``[start, end]`` in proportion to their length.

    The offline recogniser gives no word timings, so this is an estimate; Deepgram's
    field layout is kept exactly (``word`` is lower-case without punctuation,
    ``punctuated_word`` as spoken in the transcript).
    """
    tokens = text.split()
    if not tokens:
        return []
    weights = [max(len(_WORD_EDGE.sub("", t)), 1) for t in tokens]
    total = float(sum(weights))
    span = max(end - start, 0.0)
    words: list[dict[str, Any]] = []
    at = start
    for token, weight in zip(tokens, weights, strict=True):
        length = span * weight / total
        bare = _WORD_EDGE.sub("", token).lower() or token.lower()
        words.append(
            {
                "word": bare,
                "start": round(at, 3),
                "end": round(at + length, 3),
                "confidence": round(confidence, 4),
                "punctuated_word": token if punctuate else bare,
            }
        )
        at += length
    return words


def plain_transcript(text: str) -> str:
    """A transcript as Deepgram sends it without ``punctuate``: lower case, no punctuation."""
    words = ("".join(ch for ch in word if ch.isalnum() or ch == "'") for word in text.split())
    return " ".join(w.lower() for w in words if w)


def results_message(
    *,
    model: ModelInfo,
    transcript: str,
    confidence: float,
    words: list[dict[str, Any]],
    start: float,
    duration: float,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool,
) -> dict[str, Any]:
    """A ``Results`` message (interim or final) for channel 0 of a mono stream."""
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(duration, 3),
        "start": round(start, 3),
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {
            "alternatives": [
                {"transcript": transcript, "confidence": round(confidence, 4), "words": words}
            ]
        },
        "metadata": model.as_json(),
        "from_finalize": from_finalize,
    }


def transcript_message(
    model: ModelInfo,
    text: str,
    confidence: float,
    *,
    punctuate: bool,
    start: float,
    end: float,
    words_start: float,
    words_end: float,
    is_final: bool,
    speech_final: bool = False,
    from_finalize: bool = False,
) -> dict[str, Any]:
    """A ``Results`` message for what was heard over ``[start, end]`` of the stream.

    ``text`` is as spoken (punctuated); without ``punctuate`` it is sent lower case
    without punctuation, as Deepgram does. Its words are spread over
    ``[words_start, words_end]``.
    """
    if not punctuate:
        text = plain_transcript(text)
    return results_message(
        model=model,
        transcript=text,
        confidence=confidence if text else 0.0,
        words=timed_words(text, words_start, words_end, confidence, punctuate=punctuate),
        start=start,
        duration=end - start,
        is_final=is_final,
        speech_final=speech_final,
        from_finalize=from_finalize,
    )


def speech_started_message(timestamp: float) -> dict[str, Any]:
    """``SpeechStarted`` (sent with ``vad_events=true``)."""
    return {"type": "SpeechStarted", "channel": [0], "timestamp": round(timestamp, 3)}


def utterance_end_message(last_word_end: float) -> dict[str, Any]:
    """``UtteranceEnd`` (sent with ``utterance_end_ms``)."""
    return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)}


def metadata_message(
    *,
    model: ModelInfo,
    created: str,
    duration: float,
    sha256: str,
) -> dict[str, Any]:
    """``Metadata``: the last message of a stream, after CloseStream."""
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": model.request_id,
        "sha256": sha256,
        "created": created,
        "duration": round(duration, 3),
        "channels": 1,
        "models": [MODEL_UUID],
        "model_info": {
            MODEL_UUID: {
                "name": f"general-{model.arch}",
                "version": "2025-01-01.0",
                "arch": model.arch,
            }
        },
    }


def error_message(description: str, message: str) -> dict[str, Any]:
    """``Error``: a client message the server could not use."""
    return {
        "type": "Error",
        "variant": "SchemaError",
        "description": description,
        "message": message,
    }
