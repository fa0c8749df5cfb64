"""Deepgram messages: the simulator's JSON, parsed by the real SDK, decoded into our events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deepgram.core.unchecked_base_model import construct_type
from deepgram.listen.v1.socket_client import V1SocketClientResponse

from realtime_voice.providers.base import SpeechStarted, TranscriptResult, UtteranceEnd
from realtime_voice.providers.deepgram_messages import Decoded, decode_message
from realtime_voice.testing.deepgram_sim_messages import (
    ModelInfo,
    error_message,
    metadata_message,
    results_message,
    speech_started_message,
    timed_words,
    utterance_end_message,
)

MODEL = ModelInfo("req-1", "nova-3")


def parse(message: dict[str, Any]) -> Any:
    """What iterating the SDK socket yields for this message on the wire."""
    response_type: Any = V1SocketClientResponse
    return construct_type(type_=response_type, object_=json.loads(json.dumps(message)))


def results(
    text: str, start: float, duration: float, *, final: bool = True, **flags: bool
) -> dict[str, Any]:
    words = timed_words(text, start, start + duration, 0.9, punctuate=True)
    return results_message(
        model=MODEL,
        transcript=text,
        confidence=0.9,
        words=words,
        start=start,
        duration=duration,
        is_final=final,
        speech_final=flags.get("speech_final", False),
        from_finalize=flags.get("from_finalize", False),
    )


def test_results_shape_matches_the_documented_api() -> None:
    message = results("Hello, I need help.", 0.0, 1.5, speech_final=True)
    assert set(message) == {
        "type", "channel_index", "duration", "start", "is_final", "speech_final",
        "channel", "metadata", "from_finalize",
    }  # fmt: skip
    alt = message["channel"]["alternatives"][0]
    assert set(alt) == {"transcript", "confidence", "words"}
    assert set(alt["words"][0]) == {"word", "start", "end", "confidence", "punctuated_word"}
    assert alt["words"][0]["word"] == "hello"
    assert alt["words"][0]["punctuated_word"] == "Hello,"
    assert set(message["metadata"]) == {"request_id", "model_info", "model_uuid"}


def test_a_final_result_becomes_a_transcript_in_stream_time() -> None:
    decoded = decode_message(
        parse(results("Table for two.", 1.0, 2.0, speech_final=True)), base=10.0, floor=0.0
    )
    event = decoded.event
    assert isinstance(event, TranscriptResult)
    assert (event.text, event.is_final, event.speech_final) == ("Table for two.", True, True)
    assert event.start == pytest.approx(11.0)
    assert event.duration == pytest.approx(2.0)
    assert [w.word for w in event.words] == ["Table", "for", "two."]
    assert event.words[0].start == pytest.approx(11.0)
    assert event.words[-1].end == pytest.approx(13.0)
    assert decoded.covered_until == pytest.approx(13.0)
    assert not decoded.from_finalize


def test_interims_do_not_cover_audio_and_empty_ones_are_not_delivered() -> None:
    interim = decode_message(parse(results("Table", 0.0, 1.0, final=False)), base=0.0, floor=0.0)
    assert isinstance(interim.event, TranscriptResult) and not interim.event.is_final
    assert interim.covered_until is None
    empty = decode_message(parse(results("", 0.0, 1.0, final=False)), base=0.0, floor=0.0)
    assert empty.event is None
    empty_final = decode_message(parse(results("", 0.0, 3.0)), base=0.0, floor=0.0)
    assert isinstance(empty_final.event, TranscriptResult) and empty_final.event.text == ""
    assert empty_final.covered_until == pytest.approx(3.0)


def test_replayed_audio_is_clamped_to_what_earlier_finals_covered() -> None:
    # After a reconnect the new socket re-transcribes from 4.9 s, but finals covered
    # up to 5.0 s: the overlapping word is dropped and the result starts at 5.0.
    message = results_message(
        model=MODEL,
        transcript="ok and then",
        confidence=0.8,
        words=[
            {"word": "ok", "start": 0.0, "end": 0.1, "confidence": 0.8, "punctuated_word": "ok"},
            {"word": "and", "start": 0.2, "end": 0.4, "confidence": 0.8,
             "punctuated_word": "and"},
            {"word": "then", "start": 0.4, "end": 0.7, "confidence": 0.8,
             "punctuated_word": "then"},
        ],
        start=0.0,
        duration=1.0,
        is_final=True,
        speech_final=False,
        from_finalize=True,
    )  # fmt: skip
    decoded = decode_message(parse(message), base=4.9, floor=5.0)
    event = decoded.event
    assert isinstance(event, TranscriptResult)
    assert event.text == "and then"
    assert event.start == pytest.approx(5.0)
    assert event.start + event.duration == pytest.approx(5.9)
    assert [w.word for w in event.words] == ["and", "then"]
    times = [t for w in event.words for t in (w.start, w.end)]
    assert times == pytest.approx([5.1, 5.3, 5.3, 5.6])
    assert decoded.from_finalize


def test_vad_and_end_of_turn_events_are_offset_too() -> None:
    started = decode_message(parse(speech_started_message(0.12)), base=2.0, floor=0.0)
    assert isinstance(started.event, SpeechStarted)
    assert started.event.timestamp == pytest.approx(2.12)
    ended = decode_message(parse(utterance_end_message(1.42)), base=2.0, floor=0.0)
    assert isinstance(ended.event, UtteranceEnd)
    assert ended.event.last_word_end == pytest.approx(3.42)


def test_metadata_error_and_unknown_messages() -> None:
    meta = metadata_message(model=MODEL, created="2025-01-01T00:00:00Z", duration=2.2, sha256="0")
    assert decode_message(parse(meta), base=0.0, floor=0.0) == Decoded(metadata=True)
    error = decode_message(parse(error_message("bad message", "{}")), base=0.0, floor=0.0)
    assert error.error == "SchemaError: bad message"
    assert decode_message(parse({"type": "SomethingNew"}), base=0.0, floor=0.0) == Decoded()


def test_missing_fields_do_not_break_decoding() -> None:
    decoded = decode_message(
        parse({"type": "Results", "is_final": True, "channel": {"alternatives": []}}),
        base=1.0,
        floor=0.0,
    )
    assert decoded.event == TranscriptResult("", True, False, 0.0, 1.0, 0.0, ())
