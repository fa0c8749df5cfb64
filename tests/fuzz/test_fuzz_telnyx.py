"""Fuzzing the Telnyx media-stream codec: `parse` only ever raises `ProtocolError`.

Whatever Telnyx (or something pretending to be it) sends — malformed JSON, wrong field
types, binary frames, bad base64, odd chunk counters, near-valid ``start`` frames with
odd media formats and parameters, error frames, events out of order — `parse` returns
events or raises `ProtocolError` with a code and a message. Reordering never releases
a chunk twice or out of order, and puts any shuffle within its window back in order.
What the ``format_*`` methods write is Telnyx's shape and comes back unchanged.

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
    StopEvent,
)
from realtime_voice.protocols.telnyx import DEFAULT_REORDER_WINDOW, TelnyxProtocol
from tests.fuzz import EXAMPLES
from tests.fuzz.test_fuzz_protocols import (
    ANY_CHAR,
    BAD_BASE64,
    JSON_VALUE,
    NASTY_TEXT_FRAMES,
    ODD_TEXT,
)

SID = "32de0dea-53cb-4b21-89a4-9e1819c043bc"
FORMATS = {
    AudioFormat(AudioEncoding.MULAW, 8000, 1),
    AudioFormat(AudioEncoding.ALAW, 8000, 1),
    AudioFormat(AudioEncoding.PCM16, 8000, 1),
    AudioFormat(AudioEncoding.PCM16, 16000, 1),
}


def _dump(value: object) -> str:
    # ensure_ascii keeps lone surrogates as escapes, as a real peer's JSON would carry them.
    return json.dumps(value)


def telnyx_message(event: object, fields: dict[str, Any]) -> str:
    """A Telnyx frame tagged ``event`` with arbitrary other fields."""
    return _dump({**fields, "event": event})


B64 = st.binary(max_size=320).map(lambda b: base64.b64encode(b).decode())
CHUNKS = st.one_of(
    st.integers(0, 40).map(str),
    st.integers(-3, 40),
    st.sampled_from(["", "x", "1.5", "9" * 30, " 3", "٣"]),
    JSON_VALUE,
)
MEDIA_FORMAT = st.fixed_dictionaries(
    {},
    optional={
        "encoding": st.sampled_from(
            ["PCMU", "PCMA", "L16", "pcmu", "audio/x-mulaw", "audio/x-alaw", "G722", "OPUS"]
        )
        | JSON_VALUE,
        "sample_rate": st.sampled_from([8000, 16000, "8000", "16000", 24000, "0", True, 8000.0])
        | JSON_VALUE,
        "channels": st.sampled_from([1, "1", 2, 0, True]) | JSON_VALUE,
    },
)
PARAMETERS = st.dictionaries(ODD_TEXT, JSON_VALUE, max_size=3) | JSON_VALUE
START_OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "stream_id": st.just(SID) | JSON_VALUE,
        "user_id": JSON_VALUE,
        "call_control_id": st.just("v3:abc") | JSON_VALUE,
        "call_session_id": st.just("s-1") | JSON_VALUE,
        "client_state": st.just("c3RhdGU=") | JSON_VALUE,
        "from": st.just("+13125550123") | JSON_VALUE,
        "to": st.just("+13125550100") | JSON_VALUE,
        "media_format": MEDIA_FORMAT | JSON_VALUE,
        "custom_parameters": PARAMETERS,
        "customParameters": PARAMETERS,
    },
)
SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "stream_id": st.just(SID) | JSON_VALUE,
        "sequence_number": st.just("3") | JSON_VALUE,
        "version": st.just("1.0.0") | JSON_VALUE,
        "start": START_OBJECT | JSON_VALUE,
        "custom_parameters": PARAMETERS,
        "media": st.fixed_dictionaries(
            {},
            optional={
                "track": st.sampled_from(["inbound", "outbound", "both"]) | JSON_VALUE,
                "chunk": CHUNKS,
                "timestamp": st.just("5") | JSON_VALUE,
                "payload": BAD_BASE64 | JSON_VALUE | B64,
            },
        )
        | JSON_VALUE,
        "dtmf": st.fixed_dictionaries({}, optional={"digit": JSON_VALUE | st.just("5")})
        | JSON_VALUE,
        "mark": st.fixed_dictionaries({}, optional={"name": JSON_VALUE}) | JSON_VALUE,
        "error": st.fixed_dictionaries(
            {},
            optional={
                "code": st.just("100005") | JSON_VALUE,
                "title": st.just("rate_limit_reached") | JSON_VALUE,
                "detail": ODD_TEXT | JSON_VALUE,
            },
        )
        | JSON_VALUE,
        "stop": st.fixed_dictionaries({}, optional={"call_control_id": JSON_VALUE}) | JSON_VALUE,
    },
)
EVENTS = (
    st.sampled_from(
        ["connected", "start", "media", "dtmf", "mark", "error", "stop", "clear", "Start"]
    )
    | JSON_VALUE
)
SAME_STREAM = st.fixed_dictionaries(
    {}, optional={"stream_id": st.just(SID), "sequence_number": st.just("4") | JSON_VALUE}
)
# Frames one field away from valid, so the accepting paths get their share of examples.
NEAR_VALID_FRAMES = st.one_of(
    st.builds(
        lambda head, body: telnyx_message("media", {**head, "media": body}),
        SAME_STREAM,
        st.fixed_dictionaries(
            {"payload": B64 | BAD_BASE64},
            optional={
                "chunk": st.integers(0, 12).map(str) | CHUNKS,
                "track": st.just("inbound"),
                "timestamp": JSON_VALUE,
            },
        ),
    ),
    st.builds(
        lambda head, digit: telnyx_message("dtmf", {**head, "dtmf": {"digit": digit}}),
        SAME_STREAM,
        st.sampled_from([*"0123456789*#ABCD", "x", "10", ""]) | JSON_VALUE,
    ),
    st.builds(
        lambda head, name: telnyx_message("mark", {**head, "mark": {"name": name}}),
        SAME_STREAM,
        st.sampled_from(["greeting", ""]) | ODD_TEXT | JSON_VALUE,
    ),
    st.builds(
        lambda head, code, detail: telnyx_message(
            "error", {**head, "error": {"code": code, "title": "x", "detail": detail}}
        ),
        SAME_STREAM,
        st.sampled_from(["100002", "100003", 100004]) | JSON_VALUE,
        ODD_TEXT,
    ),
    st.builds(lambda head: telnyx_message("stop", head), SAME_STREAM),
)
FRAMES = st.one_of(
    st.binary(max_size=512),
    NASTY_TEXT_FRAMES,
    st.builds(telnyx_message, EVENTS, SECTIONS),
    NEAR_VALID_FRAMES,
)
VALID_START = _dump(
    {
        "event": "start",
        "sequence_number": "1",
        "stream_id": SID,
        "start": {
            "call_control_id": "v3:abc",
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        },
    }
)
NEEDS_START = {"media", "dtmf", "mark", "stop"}


def parse_or_explain(codec: TelnyxProtocol, frame: str | bytes) -> list[MediaEvent] | ProtocolError:
    """Parse one frame; a `ProtocolError` is returned (any other exception escapes)."""
    try:
        return codec.parse(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "unsupported_format"}, exc.code
        assert exc.message.strip(), "a ProtocolError must explain itself"
        return exc


def check_start(codec: TelnyxProtocol, event: StartEvent) -> None:
    assert event.stream_id == codec.stream_id
    assert isinstance(event.stream_id, str) and event.stream_id
    assert event.call_id == codec.call_control_id
    assert event.audio_format == codec.audio_format
    assert event.audio_format in FORMATS
    assert all(
        isinstance(k, str) and isinstance(v, str) for k, v in event.custom_parameters.items()
    )


@settings(max_examples=1000 * EXAMPLES)
@given(frames=st.lists(FRAMES, min_size=1, max_size=5), start_at=st.integers(0, 5))
def test_parse_raises_only_protocol_errors_in_any_order(
    frames: list[str | bytes], start_at: int
) -> None:
    # A valid start is spliced in at a random place: frames before it see a stream that
    # has not started, frames after it one that has.
    frames = [*frames[:start_at], VALID_START, *frames[start_at:]]
    codec = TelnyxProtocol()
    released: list[bytes] = []
    for frame in frames:
        started_before = codec.stream_id is not None
        sid_before = codec.stream_id
        format_before = codec.audio_format
        errors_before = codec.error_count
        result = parse_or_explain(codec, frame)
        if started_before:
            assert codec.stream_id == sid_before, "a stream's id never changes once started"
        if isinstance(result, ProtocolError):
            assert codec.audio_format == format_before, "a rejected frame changed the format"
            assert codec.stream_id == sid_before
            continue
        assert isinstance(frame, str), "Telnyx binary frames are always refused"
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
        elif kind == "error":
            assert result == []
            assert codec.error_count == errors_before + 1
        elif kind == "stop":
            assert result[-1] == StopEvent()
            assert all(isinstance(e, AudioEvent) for e in result[:-1])
        elif kind == "media":
            assert all(isinstance(e, AudioEvent) and e.payload for e in result)
            released.extend(e.payload for e in result if isinstance(e, AudioEvent))
        else:
            assert len(result) == 1
    # The window never overflows, however the frames came.
    held = len(codec._order.pending)
    assert held <= DEFAULT_REORDER_WINDOW


@settings(max_examples=300 * EXAMPLES)
@given(
    start=START_OBJECT,
    top=st.fixed_dictionaries(
        {"stream_id": st.just(SID) | JSON_VALUE},
        optional={"custom_parameters": PARAMETERS, "customParameters": PARAMETERS},
    ),
)
def test_near_valid_start_is_an_event_or_a_protocol_error(
    start: dict[str, Any], top: dict[str, Any]
) -> None:
    codec = TelnyxProtocol()
    result = parse_or_explain(codec, telnyx_message("start", {**top, "start": start}))
    if isinstance(result, ProtocolError):
        assert codec.stream_id is None
        assert codec.audio_format == AudioFormat(AudioEncoding.MULAW, 8000, 1)
        return
    (event,) = result
    assert isinstance(event, StartEvent)
    check_start(codec, event)
    # The start object's own custom_parameters win over every other source.
    inner = start.get("custom_parameters")
    if isinstance(inner, dict):
        for key, value in inner.items():
            if isinstance(value, str):
                assert event.custom_parameters[str(key)] == value


@settings(max_examples=300 * EXAMPLES)
@given(
    n=st.integers(1, 30),
    swaps=st.lists(st.integers(0, 29), max_size=10),
    window=st.integers(0, 4),
    duplicates=st.lists(st.integers(0, 29), max_size=4),
)
def test_reordering_releases_each_chunk_once_in_order(
    n: int, swaps: list[int], window: int, duplicates: list[int]
) -> None:
    # Adjacent swaps shuffle the chunks locally, as a network does.
    order = list(range(1, n + 1))
    for i in swaps:
        if i + 1 < n:
            order[i], order[i + 1] = order[i + 1], order[i]
    sent = order + [order[d] for d in duplicates if d < n]
    codec = TelnyxProtocol(reorder_window=window)
    codec.parse(VALID_START)
    released: list[int] = []
    for chunk in sent:
        payload = base64.b64encode(bytes([chunk])).decode()
        frame = telnyx_message(
            "media", {"stream_id": SID, "media": {"chunk": str(chunk), "payload": payload}}
        )
        released.extend(e.payload[0] for e in codec.parse(frame) if isinstance(e, AudioEvent))
    released.extend(
        e.payload[0] for e in codec.parse('{"event":"stop"}') if isinstance(e, AudioEvent)
    )
    assert released == sorted(set(released)), "a chunk released twice or out of order"
    # While chunk c is missing, every later chunk that arrived before it waits; if they
    # never outnumber the window (and chunk 1 came first), nothing is given up.
    waiting = max(sum(1 for x in order[: order.index(c)] if x > c) for c in order)
    if order[0] == 1 and waiting <= window:
        assert released == list(range(1, n + 1)), "a shuffle within the window was not undone"


@settings(max_examples=300 * EXAMPLES)
@given(
    sid=st.text(ANY_CHAR, min_size=1, max_size=40),
    encoding=st.sampled_from(["PCMU", "PCMA", "L16"]),
    frame=st.binary(max_size=640),
    name=st.text(ANY_CHAR, min_size=1, max_size=60),
)
def test_outbound_round_trips(sid: str, encoding: str, frame: bytes, name: str) -> None:
    codec = TelnyxProtocol()
    start = {"media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1}}
    (event,) = codec.parse(_dump({"event": "start", "stream_id": sid, "start": start}))
    assert isinstance(event, StartEvent) and event.stream_id == sid
    media = codec.format_audio(frame)
    media.encode("utf-8")
    sent = json.loads(media)
    assert sent.keys() == {"event", "media"} and sent["event"] == "media"
    payload = base64.b64decode(sent["media"]["payload"], validate=True)
    expected = frame if encoding != "L16" else frame[: len(frame) // 2 * 2]
    if encoding == "L16":
        # Network byte order on the wire: each sample's bytes swapped.
        assert payload == b"".join(expected[i : i + 2][::-1] for i in range(0, len(expected), 2))
    else:
        assert payload == frame
    # Our outbound shape is also a valid inbound one: it decodes back to the frame.
    assert codec.parse(media) == ([AudioEvent(expected)] if expected else [])
    mark = codec.format_mark(name)
    mark.encode("utf-8")
    assert json.loads(mark) == {"event": "mark", "mark": {"name": name}}
    assert codec.parse(mark) == [MarkEvent(name)]
    assert json.loads(codec.format_clear()) == {"event": "clear"}
