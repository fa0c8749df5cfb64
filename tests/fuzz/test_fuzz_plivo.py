"""Fuzzing the Plivo audio-stream codec: `parse` only ever raises `ProtocolError`.

Whatever Plivo (or something pretending to be it) sends — malformed JSON, wrong field
types, binary frames, bad base64, lone surrogates, deep nesting, near-valid ``start``
frames with odd media formats and ``extra_headers``, events out of order — `parse`
returns events or raises `ProtocolError` with a code and a message; and what the
``format_*`` methods write comes back through Plivo's wire format unchanged
(`PlivoGatewayWire` parses it as Plivo would).

Derandomized through the shared ``fuzz`` profile (tests/fuzz/__init__.py).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.audio.format import MULAW_8K, AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
)
from realtime_voice.protocols.plivo import PlivoProtocol, parse_extra_headers
from realtime_voice.testing.gateway_wire import BotAudio, BotClear, BotMark
from realtime_voice.testing.gateway_wire_plivo import PlivoGatewayWire
from tests.fuzz import EXAMPLES
from tests.fuzz.test_fuzz_protocols import (
    ANY_CHAR,
    BAD_BASE64,
    JSON_VALUE,
    NASTY_TEXT_FRAMES,
    ODD_TEXT,
)

CALL = "eba53b9e-8fbd-45c1-9444-696d2172fbc8"
STREAM = "87654321-4321-4321-4321-cba987654321"
FORMATS = {MULAW_8K, *(AudioFormat(AudioEncoding.PCM16, r, 1) for r in (8000, 16000))}


def _dump(value: object) -> str:
    # ensure_ascii keeps lone surrogates as escapes, as a real peer's JSON would carry them.
    return json.dumps(value)


def plivo_message(event: object, fields: dict[str, Any]) -> str:
    """A Plivo frame tagged ``event`` with arbitrary other fields."""
    return _dump({**fields, "event": event})


MEDIA_FORMAT = st.fixed_dictionaries(
    {},
    optional={
        "encoding": st.sampled_from(
            ["audio/x-mulaw", "audio/x-l16", "audio/x-l16;rate=16000", "audio/x-alaw", ""]
        )
        | JSON_VALUE,
        "sampleRate": st.sampled_from([8000, 16000, "8000", 24000, 0, True, 8000.0, "x"])
        | JSON_VALUE,
    },
)
EXTRA_HEADERS = st.one_of(
    st.lists(st.tuples(ODD_TEXT, ODD_TEXT), max_size=4).map(
        lambda kv: ";".join(f"{k}={v}" for k, v in kv)
    ),
    st.sampled_from(["tokenhex=zz", "tokenhex=ff", f"tokenhex={b'1.a.b'.hex()}", "a=1,b=2"]),
    st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=3),
    st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=3).map(_dump),
    JSON_VALUE,
)
START_OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "callId": st.just(CALL) | JSON_VALUE,
        "streamId": st.just(STREAM) | JSON_VALUE,
        "accountId": st.just("MA1") | JSON_VALUE,
        "tracks": st.just(["inbound"]) | JSON_VALUE,
        "mediaFormat": MEDIA_FORMAT | JSON_VALUE,
        "extra_headers": EXTRA_HEADERS,
    },
)
SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "streamId": st.just(STREAM) | JSON_VALUE,
        "sequenceNumber": st.integers(0, 9) | JSON_VALUE,
        "extra_headers": EXTRA_HEADERS,
        "start": START_OBJECT | JSON_VALUE,
        "media": st.fixed_dictionaries(
            {},
            optional={
                "track": st.sampled_from(["inbound", "outbound", "both"]) | JSON_VALUE,
                "chunk": JSON_VALUE,
                "timestamp": JSON_VALUE,
                "payload": BAD_BASE64
                | JSON_VALUE
                | st.binary(max_size=320).map(lambda b: base64.b64encode(b).decode()),
            },
        )
        | JSON_VALUE,
        "dtmf": st.fixed_dictionaries({}, optional={"digit": JSON_VALUE | st.just("5")})
        | JSON_VALUE,
        "name": JSON_VALUE | st.just("greeting"),
    },
)
EVENTS = (
    st.sampled_from(
        ["start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop", "playAudio"]
    )
    | JSON_VALUE
)
SAME_STREAM = st.fixed_dictionaries(
    {}, optional={"streamId": st.just(STREAM), "sequenceNumber": st.integers(1, 99)}
)
# Frames one field away from valid, so the accepting paths get their share of examples.
NEAR_VALID_FRAMES = st.one_of(
    st.builds(
        lambda head, body: plivo_message("media", {**head, "media": body}),
        SAME_STREAM,
        st.fixed_dictionaries(
            {"payload": st.binary(max_size=320).map(lambda b: base64.b64encode(b).decode())},
            optional={"track": st.sampled_from(["inbound", "outbound"]), "chunk": JSON_VALUE},
        ),
    ),
    st.builds(
        lambda head, digit: plivo_message("dtmf", {**head, "dtmf": {"digit": digit}}),
        SAME_STREAM,
        st.sampled_from([*"0123456789*#ABCD", "x", "10", ""]) | JSON_VALUE,
    ),
    st.builds(
        lambda head, name: plivo_message("playedStream", {**head, "name": name}),
        SAME_STREAM,
        st.sampled_from(["greeting", ""]) | ODD_TEXT | JSON_VALUE,
    ),
    st.builds(
        lambda head, event: plivo_message(event, head),
        SAME_STREAM,
        st.sampled_from(["stop", "clearedAudio"]),
    ),
)
FRAMES = st.one_of(
    st.binary(max_size=512),
    NASTY_TEXT_FRAMES,
    st.builds(plivo_message, EVENTS, SECTIONS),
    NEAR_VALID_FRAMES,
)
VALID_START = _dump(
    {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": CALL,
            "streamId": STREAM,
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000},
        },
        "extra_headers": f"tokenhex={b'1.a.b'.hex()}",
    }
)
NEEDS_START = {"media", "dtmf", "playedStream", "played", "clearedAudio", "stop"}


def parse_or_explain(codec: PlivoProtocol, frame: str | bytes) -> list[MediaEvent] | ProtocolError:
    """Parse one frame; a `ProtocolError` is returned (any other exception escapes)."""
    try:
        return codec.parse(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "unsupported_format"}, exc.code
        assert exc.message.strip(), "a ProtocolError must explain itself"
        return exc


def check_start(codec: PlivoProtocol, event: StartEvent) -> None:
    assert event.stream_id == codec.stream_id
    assert isinstance(event.call_id, str) and event.call_id == codec.call_uuid
    assert event.audio_format == codec.audio_format
    assert event.audio_format in FORMATS
    assert all(
        isinstance(k, str) and isinstance(v, str) for k, v in event.custom_parameters.items()
    )


@settings(max_examples=1000 * EXAMPLES)
@given(frames=st.lists(FRAMES, min_size=1, max_size=8), start_at=st.integers(0, 8))
def test_parse_raises_only_protocol_errors_in_any_order(
    frames: list[str | bytes], start_at: int
) -> None:
    # A valid start is spliced in at a random place: frames before it see a stream that
    # has not started, frames after it one that has.
    frames = [*frames[:start_at], VALID_START, *frames[start_at:]]
    codec = PlivoProtocol()
    for frame in frames:
        started_before = codec.stream_id is not None
        sid_before = codec.stream_id
        format_before = codec.audio_format
        result = parse_or_explain(codec, frame)
        if isinstance(result, ProtocolError):
            assert codec.audio_format == format_before, "a rejected frame changed the format"
            assert codec.stream_id == sid_before
            continue
        assert isinstance(frame, str), "Plivo binary frames are always refused"
        assert len(result) <= 1
        kind = json.loads(frame).get("event")
        if kind in NEEDS_START:
            assert started_before, f"{kind} accepted before start"
        if kind == "start":
            assert not started_before, "a second start was accepted"
            (event,) = result
            assert isinstance(event, StartEvent)
            check_start(codec, event)
        else:
            assert codec.stream_id == sid_before
            assert codec.audio_format == format_before


# 500 here on top of the 1,000 above: this test's examples are the costlier ones.
@settings(max_examples=500 * EXAMPLES)
@given(
    start=START_OBJECT,
    top=st.fixed_dictionaries(
        {},
        optional={
            "sequenceNumber": st.just(1) | JSON_VALUE,
            "extra_headers": EXTRA_HEADERS,
            "extraHeaders": EXTRA_HEADERS,
        },
    ),
)
def test_near_valid_start_is_an_event_or_a_protocol_error(
    start: dict[str, Any], top: dict[str, Any]
) -> None:
    codec = PlivoProtocol()
    result = parse_or_explain(codec, plivo_message("start", {**top, "start": start}))
    if isinstance(result, ProtocolError):
        assert codec.stream_id is None
        assert codec.audio_format == MULAW_8K
        return
    (event,) = result
    assert isinstance(event, StartEvent)
    check_start(codec, event)
    # The top-level extra_headers (the docs' place) win over the copy inside start.
    top_headers = top.get("extra_headers")
    if isinstance(top_headers, str | dict):
        for key, value in parse_extra_headers(top_headers).items():
            assert event.custom_parameters[key] == value


@settings(max_examples=300 * EXAMPLES)
@given(
    stream_id=st.text(ANY_CHAR, min_size=1, max_size=40),
    call_uuid=st.text(ANY_CHAR, min_size=1, max_size=40),
    frame=st.binary(max_size=1600),
    name=st.text(ANY_CHAR, min_size=1, max_size=60),
    token=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80),
)
def test_outbound_round_trips_through_plivos_side(
    stream_id: str, call_uuid: str, frame: bytes, name: str, token: str
) -> None:
    wire = PlivoGatewayWire(call_uuid, stream_id=stream_id)
    codec = PlivoProtocol()
    # What our answer XML puts in extraHeaders comes back as the token.
    (opening,) = wire.opening({"tokenhex": token.encode().hex()})
    (start,) = codec.parse(opening)
    assert isinstance(start, StartEvent)
    assert (start.call_id, start.stream_id) == (call_uuid, stream_id)
    assert dict(start.custom_parameters) == {"token": token}
    media = codec.format_audio(frame)
    media.encode("utf-8")
    assert json.loads(media)["media"]["contentType"] == "audio/x-mulaw"
    assert wire.parse(media) == BotAudio(frame)
    mark = codec.format_mark(name)
    mark.encode("utf-8")
    assert wire.parse(mark) == BotMark(name)
    # ...and Plivo's echo of it is our mark again.
    assert codec.parse(wire.mark(name)) == [MarkEvent(name)]
    assert wire.parse(codec.format_clear()) == BotClear()
    assert codec.parse(wire.cleared()) == []
    assert codec.parse(wire.audio(frame, 20)) == ([AudioEvent(frame)] if frame else [])
