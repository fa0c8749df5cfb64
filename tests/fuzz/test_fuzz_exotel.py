"""Fuzzing the Exotel Voicebot codec: `parse` only ever raises `ProtocolError`.

Whatever Exotel (or something pretending to be it) sends — malformed JSON, wrong field
types, binary frames, bad base64, lone surrogates, deep nesting, near-valid ``start``
frames with odd media formats and ``customField`` text, events out of order — `parse`
returns events or raises `ProtocolError` with a code and a message; and what the
``format_*`` methods write comes back through the wire format unchanged (audio padded
with silence to Exotel's 320-byte unit).

Derandomized through the shared ``fuzz`` profile (tests/fuzz/__init__.py).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    ConnectedEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
)
from realtime_voice.protocols.exotel import CHUNK_BYTES, ExotelProtocol
from tests.fuzz import EXAMPLES
from tests.fuzz.test_fuzz_protocols import (
    ANY_CHAR,
    BAD_BASE64,
    JSON_VALUE,
    NASTY_TEXT_FRAMES,
    ODD_TEXT,
)

SID = "MZ1c4e0b8a5f2d9e7a6b3c"
FORMATS = {AudioFormat(AudioEncoding.PCM16, rate, 1) for rate in (8000, 16000)}


def _dump(value: object) -> str:
    # ensure_ascii keeps lone surrogates as escapes, as a real peer's JSON would carry them.
    return json.dumps(value)


def exotel_message(event: object, fields: dict[str, Any]) -> str:
    """An Exotel frame tagged ``event`` with arbitrary other fields."""
    return _dump({**fields, "event": event})


RATES = st.sampled_from(["8000", "16000", "24000", 8000, 16000, "0", "-8000", True, 8000.0, ""])
MEDIA_FORMAT = st.fixed_dictionaries(
    {},
    optional={
        "encoding": st.sampled_from(["audio/x-raw", "AUDIO/X-RAW", "slin", "audio/x-mulaw"])
        | JSON_VALUE,
        "sample_rate": RATES | JSON_VALUE,
        "bit_rate": st.sampled_from(["16", 16, "8", False]) | JSON_VALUE,
    },
)
CUSTOM_FIELD = st.one_of(
    st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=4).map(_dump),  # seed 000: JSON text
    st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=4),
    ODD_TEXT,
    JSON_VALUE,
)
START_OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "stream_sid": st.just(SID) | JSON_VALUE,
        "call_sid": st.just("CA1") | JSON_VALUE,
        "account_sid": st.just("AC1") | JSON_VALUE,
        "from": st.just("+919876543210") | JSON_VALUE,
        "to": st.just("+918047491899") | JSON_VALUE,
        "custom_parameters": st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=3) | JSON_VALUE,
        "media_format": MEDIA_FORMAT | JSON_VALUE,
        "CustomField": CUSTOM_FIELD,
    },
)
SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "stream_sid": st.just(SID) | JSON_VALUE,
        "streamSid": st.just(SID) | JSON_VALUE,
        "sequence_number": st.just("3") | JSON_VALUE,
        "call_sid": st.just("CA1") | JSON_VALUE,
        "customField": CUSTOM_FIELD,
        "custom_parameters": st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=3) | JSON_VALUE,
        "start": START_OBJECT | JSON_VALUE,
        "media": st.fixed_dictionaries(
            {},
            optional={
                "chunk": st.just("2") | JSON_VALUE,
                "timestamp": st.just("200") | JSON_VALUE,
                "payload": BAD_BASE64
                | JSON_VALUE
                | st.binary(max_size=640).map(lambda b: base64.b64encode(b).decode()),
            },
        )
        | JSON_VALUE,
        "dtmf": st.fixed_dictionaries(
            {}, optional={"digit": JSON_VALUE | st.just("5"), "duration": JSON_VALUE}
        )
        | JSON_VALUE,
        "mark": st.fixed_dictionaries({}, optional={"name": JSON_VALUE}) | JSON_VALUE,
        "stop": st.fixed_dictionaries({}, optional={"reason": JSON_VALUE}) | JSON_VALUE,
    },
)
EVENTS = (
    st.sampled_from(
        ["connected", "start", "media", "dtmf", "mark", "stop", "clear", "playAudio", "Start"]
    )
    | JSON_VALUE
)
B64_PCM = st.binary(max_size=640).map(lambda b: base64.b64encode(b).decode())
SAME_STREAM = st.fixed_dictionaries(
    {}, optional={"stream_sid": st.just(SID), "sequence_number": st.just("4") | JSON_VALUE}
)
# Frames one field away from valid, so the accepting paths get their share of examples.
NEAR_VALID_FRAMES = st.one_of(
    st.builds(
        lambda head, body: exotel_message("media", {**head, "media": body}),
        SAME_STREAM,
        st.fixed_dictionaries(
            {"payload": B64_PCM | BAD_BASE64},
            optional={"chunk": st.just("2") | JSON_VALUE, "timestamp": JSON_VALUE},
        ),
    ),
    st.builds(
        lambda head, digit, duration: exotel_message(
            "dtmf", {**head, "dtmf": {"digit": digit, "duration": duration}}
        ),
        SAME_STREAM,
        st.sampled_from([*"0123456789*#ABCD", "x", "10", "", "a"]) | JSON_VALUE,
        st.just("100") | JSON_VALUE,
    ),
    st.builds(
        lambda head, name: exotel_message("mark", {**head, "mark": {"name": name}}),
        SAME_STREAM,
        st.sampled_from(["greeting_done", "response_done", ""]) | ODD_TEXT | JSON_VALUE,
    ),
    st.builds(
        lambda head, event: exotel_message(event, head),
        SAME_STREAM,
        st.sampled_from(["stop", "clear", "connected"]),
    ),
    st.builds(
        lambda field: exotel_message("connected", {"call_sid": "CA9", "customField": field}),
        CUSTOM_FIELD,
    ),
)
FRAMES = st.one_of(
    st.binary(max_size=512),
    NASTY_TEXT_FRAMES,
    st.builds(exotel_message, EVENTS, SECTIONS),
    NEAR_VALID_FRAMES,
)
VALID_START = _dump(
    {
        "event": "start",
        "stream_sid": SID,
        "start": {
            "stream_sid": SID,
            "call_sid": "CA1",
            "custom_parameters": {"token": "t"},
            "media_format": {"encoding": "audio/x-raw", "sample_rate": "16000", "bit_rate": "16"},
        },
    }
)
NEEDS_START = {"media", "dtmf", "mark", "stop", "clear"}


def parse_or_explain(codec: ExotelProtocol, frame: str | bytes) -> list[MediaEvent] | ProtocolError:
    """Parse one frame; a `ProtocolError` is returned (any other exception escapes)."""
    try:
        return codec.parse(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "unsupported_format"}, exc.code
        assert exc.message.strip(), "a ProtocolError must explain itself"
        return exc


def check_start(codec: ExotelProtocol, event: StartEvent) -> None:
    assert event.stream_id == codec.stream_sid
    assert isinstance(event.stream_id, str) and event.stream_id
    assert event.call_id == codec.call_sid
    assert event.audio_format == codec.audio_format
    assert event.audio_format in FORMATS
    assert all(
        isinstance(k, str) and isinstance(v, str) for k, v in event.custom_parameters.items()
    )


@settings(max_examples=1000 * EXAMPLES)
@given(
    frames=st.lists(FRAMES, min_size=1, max_size=8),
    start_at=st.integers(0, 8),
    rate=st.sampled_from([8000, 16000]),
)
def test_parse_raises_only_protocol_errors_in_any_order(
    frames: list[str | bytes], start_at: int, rate: int
) -> None:
    # A valid start is spliced in at a random place: frames before it see a stream that
    # has not started, frames after it one that has.
    frames = [*frames[:start_at], VALID_START, *frames[start_at:]]
    codec = ExotelProtocol(sample_rate=rate)
    for frame in frames:
        started_before = codec.stream_sid is not None
        sid_before = codec.stream_sid
        format_before = codec.audio_format
        result = parse_or_explain(codec, frame)
        if started_before:
            assert codec.stream_sid == sid_before, "a stream's sid never changes once started"
        if isinstance(result, ProtocolError):
            assert codec.audio_format == format_before, "a rejected frame changed the format"
            assert codec.stream_sid == sid_before
            continue
        assert isinstance(frame, str), "Exotel binary frames are always refused"
        assert len(result) <= 1
        kind = json.loads(frame).get("event")
        if kind in NEEDS_START:
            assert started_before, f"{kind} accepted before start"
        if kind == "start":
            assert not started_before, "a second start was accepted"
            (event,) = result
            assert isinstance(event, StartEvent)
            check_start(codec, event)
        elif kind == "connected":
            assert result == [ConnectedEvent()]
        else:
            assert codec.audio_format == format_before


# The any-order parse test above holds the 1,000 examples; near-valid starts are a
# narrower space (300, as for Telnyx), and the suite's CI time is shared.
@settings(max_examples=300 * EXAMPLES)
@given(
    connected=st.none() | SECTIONS.map(lambda f: exotel_message("connected", f)),
    start=START_OBJECT,
    top=st.fixed_dictionaries(
        {"stream_sid": st.just(SID) | JSON_VALUE},
        optional={
            "custom_parameters": st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=3) | JSON_VALUE,
            "customField": CUSTOM_FIELD,
            "call_sid": st.just("CA2") | JSON_VALUE,
        },
    ),
    rate=st.sampled_from([8000, 16000]),
)
def test_near_valid_start_is_an_event_or_a_protocol_error(
    connected: str | None, start: dict[str, Any], top: dict[str, Any], rate: int
) -> None:
    codec = ExotelProtocol(sample_rate=rate)
    if connected is not None:
        parse_or_explain(codec, connected)
    result = parse_or_explain(codec, exotel_message("start", {**top, "start": start}))
    if isinstance(result, ProtocolError):
        assert codec.stream_sid is None
        assert codec.audio_format == AudioFormat(AudioEncoding.PCM16, rate, 1)
        return
    (event,) = result
    assert isinstance(event, StartEvent)
    check_start(codec, event)
    assert event.audio_format is not None
    fmt = start.get("media_format")
    if isinstance(fmt, dict) and "sample_rate" in fmt:
        assert event.audio_format.sample_rate == int(fmt["sample_rate"])
    else:
        assert event.audio_format.sample_rate == rate
    # The docs' custom_parameters (inside start) win over every other source.
    inner = start.get("custom_parameters")
    if isinstance(inner, dict):
        for key, value in inner.items():
            if isinstance(value, str):
                assert event.custom_parameters[str(key)] == value


@settings(max_examples=300 * EXAMPLES)
@given(
    sid=st.text(ANY_CHAR, min_size=1, max_size=40),
    rate=st.sampled_from([8000, 16000]),
    frame=st.binary(max_size=3200),
    name=st.text(ANY_CHAR, min_size=1, max_size=60),
)
def test_outbound_round_trips(sid: str, rate: int, frame: bytes, name: str) -> None:
    codec = ExotelProtocol(sample_rate=rate)
    (start,) = codec.parse(_dump({"event": "start", "start": {"stream_sid": sid}}))
    assert isinstance(start, StartEvent) and start.stream_id == sid
    media = codec.format_audio(frame)
    media.encode("utf-8")
    sent = json.loads(media)
    assert sent.keys() == {"event", "stream_sid", "media"}
    assert sent["event"] == "media" and sent["stream_sid"] == sid
    payload = base64.b64decode(sent["media"]["payload"], validate=True)
    assert len(payload) % CHUNK_BYTES == 0, "Exotel needs multiples of 320 bytes"
    assert len(payload) - len(frame) < CHUNK_BYTES
    assert payload[: len(frame)] == frame
    assert not any(payload[len(frame) :]), "padding must be PCM silence"
    # Our own outbound message shape is also a valid inbound one: it decodes to the audio.
    assert codec.parse(media) == ([AudioEvent(payload)] if payload else [])
    mark = codec.format_mark(name)
    mark.encode("utf-8")
    assert json.loads(mark) == {"event": "mark", "stream_sid": sid, "mark": {"name": name}}
    assert codec.parse(mark) == [MarkEvent(name)]
    clear = codec.format_clear()
    assert json.loads(clear) == {"event": "clear", "stream_sid": sid}
    assert codec.parse(clear) == []


@settings(max_examples=300 * EXAMPLES)
@given(
    lead=st.dictionaries(
        st.text(ANY_CHAR, min_size=1, max_size=20),
        st.text(ANY_CHAR, max_size=30) | st.integers(-(10**12), 10**12),
        max_size=6,
    ),
    call_sid=st.text(ANY_CHAR, min_size=1, max_size=30),
    as_text=st.booleans(),
)
def test_seed_000_lead_context_round_trips_into_the_start(
    lead: dict[str, str | int], call_sid: str, as_text: bool
) -> None:
    codec = ExotelProtocol()
    custom_field: object = _dump(lead) if as_text else lead
    connected = _dump({"event": "connected", "call_sid": call_sid, "customField": custom_field})
    assert codec.parse(connected) == [ConnectedEvent()]
    (event,) = codec.parse(_dump({"event": "start", "stream_sid": SID}))
    assert isinstance(event, StartEvent)
    assert event.call_id == call_sid
    assert dict(event.custom_parameters) == {
        k: v if isinstance(v, str) else str(v) for k, v in lead.items()
    }
