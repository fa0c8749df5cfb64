"""Fuzzing the browser leg's codec: `parse` only ever raises `ProtocolError`.

Whatever a page (or something pretending to be one) sends — malformed JSON, wrong field
types, odd-length, empty or oversized binary frames, lone surrogates, deep nesting,
events out of order — `parse` returns events or raises `ProtocolError` with a code and a
message; the audio that comes out is whole 640-byte frames holding exactly the bytes that
went in, in order; and a rejected message changes nothing.

Derandomized through the shared ``fuzz`` profile (tests/fuzz/__init__.py); 300 examples.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.browser import FRAME_BYTES, MAX_AUDIO_BYTES, BrowserProtocol
from tests.fuzz import EXAMPLES
from tests.fuzz.test_fuzz_protocols import JSON_VALUE, NASTY_TEXT_FRAMES, ODD_TEXT

CALL = "browser-0f0e0d0c-0b0a-4908-8706-050403020100"


def message(event: object, fields: dict[str, Any]) -> str:
    # ensure_ascii keeps lone surrogates as escapes, as a real peer's JSON would carry them.
    return json.dumps({**fields, "event": event})


EVENTS = st.sampled_from(["start", "mark", "dtmf", "hangup", "media", "stop", ""]) | JSON_VALUE
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "call_id": st.sampled_from([CALL, "browser-other", ""]) | ODD_TEXT | JSON_VALUE,
        "sample_rate": st.sampled_from([16000, 16000.0, 8000, 48000, "16000"]) | JSON_VALUE,
        "name": st.sampled_from(["greeting_done", ""]) | ODD_TEXT | JSON_VALUE,
        "digit": st.sampled_from([*"0123456789*#ABCD", "x", "10", ""]) | JSON_VALUE,
    },
)
AUDIO = st.one_of(
    st.binary(max_size=2 * FRAME_BYTES + 3),
    st.integers(0, 3).map(lambda extra: bytes(MAX_AUDIO_BYTES - 2 + extra)),
)
FRAMES = st.one_of(NASTY_TEXT_FRAMES, st.builds(message, EVENTS, FIELDS), AUDIO)
VALID_START = json.dumps({"event": "start", "call_id": CALL, "sample_rate": 16000})


def parse_or_explain(
    codec: BrowserProtocol, frame: str | bytes
) -> list[MediaEvent] | ProtocolError:
    """Parse one frame; a `ProtocolError` is returned (any other exception escapes)."""
    try:
        return codec.parse(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "unsupported_format"}, exc.code
        assert exc.message.strip(), "a ProtocolError must explain itself"
        return exc


@settings(max_examples=300 * EXAMPLES)
@given(frames=st.lists(FRAMES, min_size=1, max_size=6), start_at=st.integers(0, 6))
def test_parse_raises_only_protocol_errors_and_audio_comes_out_whole(
    frames: list[str | bytes], start_at: int
) -> None:
    # A valid start is spliced in at a random place: frames before it see a call that
    # has not started, frames after it one that has.
    frames = [*frames[:start_at], VALID_START, *frames[start_at:]]
    codec = BrowserProtocol(CALL)
    sent = bytearray()
    received = bytearray()
    for frame in frames:
        started_before = codec.started
        result = parse_or_explain(codec, frame)
        if isinstance(result, ProtocolError):
            assert codec.started == started_before, "a rejected frame changed the call"
            continue
        if isinstance(frame, bytes):
            assert started_before, "audio accepted before start"
            sent += frame
            for event in result:
                assert isinstance(event, AudioEvent) and len(event.payload) == FRAME_BYTES
                received += event.payload
            continue
        kind = json.loads(frame).get("event")
        (event,) = result
        if kind == "start":
            assert not started_before and isinstance(event, StartEvent)
            assert event.call_id == CALL == codec.call_id
            continue
        assert started_before, f"{kind!r} accepted before start"
        assert isinstance(event, MarkEvent | DtmfEvent | StopEvent)
    # Re-framing loses nothing and invents nothing: only the incomplete tail is held.
    assert len(sent) - len(received) < FRAME_BYTES
    assert bytes(received) == bytes(sent[: len(received)])


@settings(max_examples=100 * EXAMPLES)
@given(name=ODD_TEXT, code=ODD_TEXT, text=ODD_TEXT)
def test_what_the_server_writes_is_valid_utf8_json(name: str, code: str, text: str) -> None:
    codec = BrowserProtocol(CALL)
    codec.parse(VALID_START)
    for out in (
        codec.format_mark(name),
        codec.format_error(code, text),
        codec.format_end(text),
        codec.format_transfer({"phoneNumber": name}),
        codec.format_started(),
    ):
        out.encode("utf-8")
        assert isinstance(json.loads(out), dict)
    assert json.loads(codec.format_mark(name))["name"] == name
