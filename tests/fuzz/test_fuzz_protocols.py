"""Fuzzing both media protocol codecs: `parse` only ever raises `ProtocolError`.

Whatever a gateway sends (malformed JSON, wrong field types, binary garbage, bad base64,
lone surrogates, NULs, deep nesting, events out of order), `parse` must either return
events or raise `ProtocolError` with a code and a message that names the problem; and
what the ``format_*`` methods write must come back unchanged through the wire format.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.format import AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    ConfigEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
)
from realtime_voice.protocols.ringcentral_bridge import RingCentralBridgeProtocol
from realtime_voice.protocols.twilio import TwilioMediaStreamsProtocol
from tests.fuzz import EXAMPLES

# Every code point, lone surrogates included: a JSON "\ud800" escape decodes to one.
ANY_CHAR = st.characters(codec=None, categories=None)
ODD_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.sampled_from(["", "\x00", "\ud800", "\udfff", "\u202e+15555551234", "\ufeff", "🎧" * 3]),
)
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _dump(value: object) -> str:
    # ensure_ascii keeps lone surrogates as escapes, as a real peer's JSON would carry them.
    return json.dumps(value)


def deep_nesting(depth: int, opener: str) -> str:
    """``[[[...]]]`` or ``{"a":{"a":...}}`` nested ``depth`` levels."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


NASTY_TEXT_FRAMES = st.one_of(
    st.text(ANY_CHAR, max_size=200),
    st.builds(deep_nesting, st.integers(1, 20_000), st.sampled_from(["[", "{"])),
    st.integers(4_000, 20_000).map(lambda n: "1" * n),  # past Python's int digit limit
    st.integers(4_000, 20_000).map(lambda n: '{"type":"dtmf","digit":' + "9" * n + "}"),
    st.sampled_from(["", " ", "null", "[]", '"start"', "{}", "{", '{"type":', "NaN", "\x00"]),
    JSON_VALUE.map(_dump),
)


def rc_message(kind: str, fields: dict[str, Any]) -> str:
    """A RingCentral bridge control frame of ``kind`` with arbitrary extra fields."""
    return _dump({**fields, "type": kind})


RC_KINDS = st.one_of(
    st.sampled_from(["start", "config", "dtmf", "mark", "stop", "media", "clear", "hangup"]),
    JSON_VALUE,
)
RC_FIELDS = st.dictionaries(
    st.sampled_from(
        ["customParameters", "encoding", "sampleRate", "channels", "digit", "name", "x"]
    ),
    JSON_VALUE
    | st.sampled_from(["mulaw", "pcm16", "alaw", "8000", "16000", "-1", "1", "2", 8000, 0]),
    max_size=4,
)
RC_FRAMES = st.one_of(
    st.binary(max_size=4096),
    NASTY_TEXT_FRAMES,
    st.builds(rc_message, RC_KINDS, RC_FIELDS),
)


def parse_or_explain(
    codec: RingCentralBridgeProtocol | TwilioMediaStreamsProtocol, frame: str | bytes
) -> list[MediaEvent] | ProtocolError:
    """Parse one frame; a `ProtocolError` is returned (any other exception escapes)."""
    try:
        return codec.parse(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "unsupported_format"}, exc.code
        assert exc.message.strip(), "a ProtocolError must explain itself"
        return exc


@settings(max_examples=1000 * EXAMPLES)
@given(frames=st.lists(RC_FRAMES, min_size=1, max_size=8))
def test_ringcentral_parse_raises_only_protocol_errors(frames: list[str | bytes]) -> None:
    codec = RingCentralBridgeProtocol()
    for frame in frames:
        before = codec.audio_format
        result = parse_or_explain(codec, frame)
        if isinstance(result, ProtocolError):
            # A rejected config must leave the call's format as it was.
            assert codec.audio_format == before
            continue
        assert len(result) <= 1
        if isinstance(frame, bytes):
            assert result == ([AudioEvent(frame)] if frame else [])
        for event in result:
            if isinstance(event, ConfigEvent):
                assert codec.audio_format == event.audio_format
            if isinstance(event, StartEvent):
                assert all(isinstance(v, str) for v in event.custom_parameters.values())


@settings(max_examples=300 * EXAMPLES)
@given(
    frame=st.binary(max_size=8192),
    name=st.text(ANY_CHAR, min_size=1, max_size=60),
    reason=ODD_TEXT,
    code=ODD_TEXT,
    message=ODD_TEXT,
)
def test_ringcentral_outbound_round_trips(
    frame: bytes, name: str, reason: str, code: str, message: str
) -> None:
    codec = RingCentralBridgeProtocol()
    assert codec.parse(codec.format_audio(frame)) == ([AudioEvent(frame)] if frame else [])
    mark = codec.format_mark(name)
    mark.encode("utf-8")  # a lone surrogate in a name must not make the frame unsendable
    assert codec.parse(mark) == [MarkEvent(name)]
    assert json.loads(codec.format_hangup(reason)) == {"type": "hangup", "reason": reason}
    assert json.loads(codec.format_error(code, message)) == {
        "type": "error",
        "code": code,
        "message": message,
    }
    assert json.loads(codec.format_clear()) == {"type": "clear"}
    for target in (TransferTarget(phone_number=reason), TransferTarget(extension_number=code)):
        wire = codec.format_transfer(target.as_wire())
        wire.encode("utf-8")
        assert json.loads(wire) == {"type": "transfer", "target": target.as_wire()}


@settings(max_examples=300 * EXAMPLES)
@given(
    encoding=st.sampled_from(["mulaw", "pcm16", "alaw", "MULAW", "opus", ""]) | ODD_TEXT,
    rate=st.sampled_from([8000, 16000, 24000, 48000, "8000", "16000", 0, -8000, True, 1.5])
    | JSON_VALUE,
    channels=st.sampled_from([1, 2, "1", 0, False]) | JSON_VALUE,
)
def test_ringcentral_config_accepts_exactly_what_audio_format_accepts(
    encoding: object, rate: object, channels: object
) -> None:
    codec = RingCentralBridgeProtocol()
    frame = _dump(
        {"type": "config", "encoding": encoding, "sampleRate": rate, "channels": channels}
    )
    result = parse_or_explain(codec, frame)
    if isinstance(result, ProtocolError):
        return
    (event,) = result
    assert isinstance(event, ConfigEvent)
    # What the codec accepted is a format it can hand straight back to the parser.
    fmt = event.audio_format
    assert AudioFormat.parse(fmt.encoding.value, fmt.sample_rate, fmt.channels) == fmt


# ---------------------------------------------------------------------------------- Twilio

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"


def twilio_message(event: object, fields: dict[str, Any]) -> str:
    """A Twilio Media Streams frame tagged ``event`` with arbitrary other fields."""
    return _dump({**fields, "event": event})


BAD_BASE64 = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()[:-1]),  # truncated
    st.binary(min_size=1, max_size=60).map(lambda b: "*" + base64.b64encode(b).decode()),
    st.sampled_from(["====", "A", "AB=C", "\ud800", "ÿÿÿÿ", "AAAA\x00"]),
)
TWILIO_SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "streamSid": st.just(SID) | JSON_VALUE,
        "start": st.fixed_dictionaries(
            {},
            optional={
                "streamSid": st.just(SID) | JSON_VALUE,
                "callSid": st.just("CA1") | JSON_VALUE,
                "mediaFormat": JSON_VALUE
                | st.just({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}),
                "customParameters": JSON_VALUE,
            },
        )
        | JSON_VALUE,
        "media": st.fixed_dictionaries(
            {},
            optional={
                "track": st.sampled_from(["inbound", "outbound", "both"]) | JSON_VALUE,
                "payload": BAD_BASE64
                | JSON_VALUE
                | st.binary(max_size=320).map(lambda b: base64.b64encode(b).decode()),
            },
        )
        | JSON_VALUE,
        "dtmf": st.fixed_dictionaries({}, optional={"digit": JSON_VALUE | st.just("5")})
        | JSON_VALUE,
        "mark": st.fixed_dictionaries({}, optional={"name": JSON_VALUE}) | JSON_VALUE,
    },
)
TWILIO_EVENTS = (
    st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear", "closed"])
    | JSON_VALUE
)
TWILIO_FRAMES = st.one_of(
    st.binary(max_size=512),
    NASTY_TEXT_FRAMES,
    st.builds(twilio_message, TWILIO_EVENTS, TWILIO_SECTIONS),
)
VALID_START = _dump(
    {
        "event": "start",
        "streamSid": SID,
        "start": {"streamSid": SID, "callSid": "CA1", "customParameters": {"token": "t"}},
    }
)


@settings(max_examples=1000 * EXAMPLES)
@given(frames=st.lists(TWILIO_FRAMES, min_size=1, max_size=8), start_at=st.integers(0, 8))
def test_twilio_parse_raises_only_protocol_errors_in_any_order(
    frames: list[str | bytes], start_at: int
) -> None:
    # A valid start is spliced in at a random place: frames before it see a stream that
    # has not started, frames after it one that has.
    frames = [*frames[:start_at], VALID_START, *frames[start_at:]]
    codec = TwilioMediaStreamsProtocol()
    for frame in frames:
        started_before = codec.stream_sid is not None
        sid_before = codec.stream_sid
        result = parse_or_explain(codec, frame)
        if started_before:
            assert codec.stream_sid == sid_before, "a stream's sid never changes once started"
        if isinstance(result, ProtocolError):
            continue
        assert isinstance(frame, str), "Twilio binary frames are always refused"
        assert len(result) <= 1
        kind = json.loads(frame).get("event")
        if kind in {"media", "dtmf", "mark", "stop"}:
            assert started_before, f"{kind} accepted before start"
        if kind == "start":
            assert not started_before, "a second start was accepted"
            assert codec.stream_sid is not None


@settings(max_examples=300 * EXAMPLES)
@given(
    sid=st.text(ANY_CHAR, min_size=1, max_size=40),
    frame=st.binary(max_size=1600),
    name=st.text(ANY_CHAR, min_size=1, max_size=60),
)
def test_twilio_outbound_round_trips(sid: str, frame: bytes, name: str) -> None:
    codec = TwilioMediaStreamsProtocol()
    (start,) = codec.parse(_dump({"event": "start", "start": {"streamSid": sid}}))
    assert isinstance(start, StartEvent) and start.stream_id == sid
    media = codec.format_audio(frame)
    media.encode("utf-8")
    assert json.loads(media) == {
        "event": "media",
        "streamSid": sid,
        "media": {"payload": base64.b64encode(frame).decode()},
    }
    # Our own outbound message shape is also a valid inbound one: it decodes to the frame.
    assert codec.parse(media) == ([AudioEvent(frame)] if frame else [])
    mark = codec.format_mark(name)
    mark.encode("utf-8")
    assert codec.parse(mark) == [MarkEvent(name)]
    assert json.loads(codec.format_clear()) == {"event": "clear", "streamSid": sid}
