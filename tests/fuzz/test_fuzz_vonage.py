"""Fuzzing the Vonage Voice WebSocket codec: `parse` only ever raises `ProtocolError`.

Whatever Vonage (or something pretending to be it) sends — malformed JSON, wrong field
types, odd-length or early binary frames, odd ``content-type`` values, headers of every
JSON type, lone surrogates, deep nesting, events out of order — `parse` returns events
or raises `ProtocolError` with a code and a message; and what the ``format_*`` methods
write comes back through the wire format unchanged (audio as whole 20 ms frames).

Derandomized through the shared ``fuzz`` profile (tests/fuzz/__init__.py).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
)
from realtime_voice.protocols.vonage import VonageProtocol
from tests.fuzz import EXAMPLES
from tests.fuzz.test_fuzz_protocols import ANY_CHAR, JSON_VALUE, NASTY_TEXT_FRAMES, ODD_TEXT

FORMATS = {AudioFormat(AudioEncoding.PCM16, rate, 1) for rate in (8000, 16000)}
UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"


def _dump(value: object) -> str:
    # ensure_ascii keeps lone surrogates as escapes, as a real peer's JSON would carry them.
    return json.dumps(value)


def vonage_message(event: object, fields: dict[str, Any]) -> str:
    """A Vonage text frame tagged ``event`` with arbitrary other fields."""
    return _dump({**fields, "event": event})


CONTENT_TYPE = (
    st.sampled_from(
        [
            "audio/l16;rate=16000",
            "audio/l16;rate=8000",
            "AUDIO/L16; RATE=16000",
            "audio/l16;rate=24000",
            "audio/l16",
            "audio/l16;rate=",
            "audio/l16;rate=016000",
            "audio/pcmu;rate=8000",
            "",
            ";;;",
        ]
    )
    | JSON_VALUE
)
HEADERS = st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=3)
CONNECTED_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": CONTENT_TYPE,
        "call_uuid": st.just(UUID) | JSON_VALUE,
        "token": st.just("t.o.k") | JSON_VALUE,
        "from": st.just("447700900000") | JSON_VALUE,
        "to": st.just("442079460000") | JSON_VALUE,
    },
)
EVENTS = (
    st.sampled_from(
        [
            "websocket:connected",
            "websocket:dtmf",
            "websocket:notify",
            "websocket:cleared",
            "websocket:media:update",
            "connected",
            "",
        ]
    )
    | JSON_VALUE
)
SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "digit": st.sampled_from([*"0123456789*#", "x", "12", ""]) | JSON_VALUE,
        "duration": st.just(260) | JSON_VALUE,
        "payload": st.fixed_dictionaries({}, optional={"mark": ODD_TEXT | JSON_VALUE}) | JSON_VALUE,
        "content-type": CONTENT_TYPE,
        "call_uuid": st.just(UUID) | JSON_VALUE,
    },
)
# Frames one field away from valid, so the accepting paths get their share of examples.
NEAR_VALID_FRAMES = st.one_of(
    st.binary(max_size=1300),
    st.builds(
        lambda digit: vonage_message("websocket:dtmf", {"digit": digit, "duration": 260}),
        st.sampled_from([*"0123456789*#ABCD", "x", "10", ""]) | JSON_VALUE,
    ),
    st.builds(
        lambda name: vonage_message("websocket:notify", {"payload": {"mark": name}}),
        st.sampled_from(["greeting_done", ""]) | ODD_TEXT | JSON_VALUE,
    ),
    st.just('{"event":"websocket:cleared"}'),
    st.builds(
        lambda fields, headers: vonage_message("websocket:connected", {**headers, **fields}),
        CONNECTED_FIELDS,
        HEADERS,
    ),
)
FRAMES = st.one_of(
    NASTY_TEXT_FRAMES,
    st.builds(vonage_message, EVENTS, SECTIONS),
    NEAR_VALID_FRAMES,
)
VALID_CONNECTED = _dump(
    {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        "call_uuid": UUID,
        "token": "t",
    }
)


def parse_or_explain(codec: VonageProtocol, frame: str | bytes) -> list[MediaEvent] | ProtocolError:
    """Parse one frame; a `ProtocolError` is returned (any other exception escapes)."""
    try:
        return codec.parse(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "unsupported_format"}, exc.code
        assert exc.message.strip(), "a ProtocolError must explain itself"
        return exc


def check_start(codec: VonageProtocol, event: StartEvent) -> None:
    assert codec.connected
    assert event.call_id == codec.call_uuid
    assert event.audio_format == codec.audio_format
    assert event.audio_format in FORMATS
    assert all(
        isinstance(k, str) and isinstance(v, str) for k, v in event.custom_parameters.items()
    )
    assert "event" not in event.custom_parameters
    assert "content-type" not in event.custom_parameters


@settings(max_examples=1000 * EXAMPLES)
@given(
    frames=st.lists(FRAMES, min_size=1, max_size=6),
    start_at=st.integers(0, 6),
    rate=st.sampled_from([8000, 16000]),
)
def test_parse_raises_only_protocol_errors_in_any_order(
    frames: list[str | bytes], start_at: int, rate: int
) -> None:
    # A valid connected is spliced in at a random place: frames before it see a stream
    # that has not started, frames after it one that has.
    frames = [*frames[:start_at], VALID_CONNECTED, *frames[start_at:]]
    codec = VonageProtocol(sample_rate=rate)
    for frame in frames:
        started_before = codec.connected
        uuid_before = codec.call_uuid
        format_before = codec.audio_format
        result = parse_or_explain(codec, frame)
        if started_before:
            assert codec.call_uuid == uuid_before, "a stream's call never changes once started"
        if isinstance(result, ProtocolError):
            assert codec.audio_format == format_before, "a rejected frame changed the format"
            assert codec.connected == started_before
            continue
        assert len(result) <= 1
        if isinstance(frame, bytes):
            assert started_before, "audio accepted before websocket:connected"
            assert result == ([AudioEvent(frame)] if frame else [])
            continue
        kind = json.loads(frame).get("event")
        if kind == "websocket:connected":
            assert not started_before, "a second connected was accepted"
            (event,) = result
            assert isinstance(event, StartEvent)
            check_start(codec, event)
            continue
        assert started_before, f"{kind!r} accepted before websocket:connected"
        assert codec.audio_format == format_before
        for event in result:
            assert isinstance(event, DtmfEvent | MarkEvent)


# The any-order parse test holds the 1,000 examples; near-valid openings are a narrower
# space (300, as for Telnyx), and the suite's CI time is shared.
@settings(max_examples=300 * EXAMPLES)
@given(fields=CONNECTED_FIELDS, headers=HEADERS, rate=st.sampled_from([8000, 16000]))
def test_near_valid_connected_is_a_start_or_a_protocol_error(
    fields: dict[str, Any], headers: dict[str, Any], rate: int
) -> None:
    codec = VonageProtocol(sample_rate=rate)
    message = {**headers, **fields}
    result = parse_or_explain(codec, vonage_message("websocket:connected", message))
    if isinstance(result, ProtocolError):
        assert not codec.connected
        assert codec.audio_format == AudioFormat(AudioEncoding.PCM16, rate, 1)
        return
    (event,) = result
    assert isinstance(event, StartEvent)
    check_start(codec, event)
    assert event.audio_format is not None
    if "content-type" not in message:
        assert event.audio_format.sample_rate == rate
    # No header is lost: every one but the reserved two reaches custom_parameters.
    assert set(event.custom_parameters) == set(message) - {"event", "content-type"}
    for key, value in message.items():
        if isinstance(value, str) and key not in ("event", "content-type"):
            assert event.custom_parameters[key] == value


@settings(max_examples=300 * EXAMPLES)
@given(
    rate=st.sampled_from([8000, 16000]),
    audio=st.binary(max_size=3000),
    name=st.text(ANY_CHAR, min_size=1, max_size=60),
    headers=st.dictionaries(
        st.text(ANY_CHAR, max_size=20).filter(lambda k: k not in ("event", "content-type")),
        st.text(ANY_CHAR, max_size=30),
        max_size=4,
    ),
)
def test_outbound_round_trips(rate: int, audio: bytes, name: str, headers: dict[str, str]) -> None:
    codec = VonageProtocol()
    connected = {
        **headers,
        "event": "websocket:connected",
        "content-type": f"audio/l16;rate={rate}",
    }
    (start,) = codec.parse(_dump(connected))
    assert isinstance(start, StartEvent)
    assert dict(start.custom_parameters) == headers
    size = rate // 50 * 2
    frames = codec.format_audio_frames(audio)
    assert all(isinstance(f, bytes) and len(f) == size for f in frames), "one 20 ms frame each"
    joined = b"".join(frames)
    assert joined[: len(audio)] == audio
    assert len(joined) - len(audio) < size
    assert not any(joined[len(audio) :]), "padding must be PCM silence"
    # What we send is also what Vonage sends: it parses back to the same audio.
    for frame in frames:
        assert codec.parse(frame) == [AudioEvent(frame)]
    mark = codec.format_mark(name)
    mark.encode("utf-8")
    sent = json.loads(mark)
    assert sent == {"action": "notify", "payload": {"mark": name}}
    echo = _dump({"event": "websocket:notify", "payload": sent["payload"]})
    assert codec.parse(echo) == [MarkEvent(name)]
    assert json.loads(codec.format_clear()) == {"action": "clear"}
    assert codec.parse('{"event":"websocket:cleared"}') == []
