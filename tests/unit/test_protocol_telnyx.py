"""Telnyx media-stream codec: literal Telnyx frames in both directions.

The inbound frames follow the shapes in Telnyx's docs
(developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket and
the Call Control ``streaming_start`` reference): ``stream_id`` at the top level, the
call in ``start``, strings for sequence numbers, chunks and timestamps.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaProtocol,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.telnyx import TelnyxProtocol, TelnyxStreamError

PCMU = AudioFormat(AudioEncoding.MULAW, 8000, 1)
PCMA = AudioFormat(AudioEncoding.ALAW, 8000, 1)
SID = "32de0dea-53cb-4b21-89a4-9e1819c043bc"
CCID = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"

CONNECTED = '{"event":"connected","version":"1.0.0"}'
START_BODY = {
    "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
    "call_control_id": CCID,
    "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
    "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
    "from": "+13122010094",
    "to": "+13122123456",
    "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
}
START = json.dumps(
    {"event": "start", "sequence_number": "1", "start": START_BODY, "stream_id": SID}
)


def start_with(**start: object) -> str:
    return json.dumps({"event": "start", "stream_id": SID, "start": {**START_BODY, **start}})


def media(payload: bytes | str, chunk: object = None, **extra: object) -> str:
    body: dict[str, object] = {
        "track": "inbound",
        "timestamp": "5",
        "payload": payload if isinstance(payload, str) else base64.b64encode(payload).decode(),
        **extra,
    }
    if chunk is not None:
        body["chunk"] = chunk
    return json.dumps({"event": "media", "sequence_number": "4", "media": body, "stream_id": SID})


def audio_of(events: list[object]) -> list[bytes]:
    assert all(isinstance(e, AudioEvent) for e in events)
    return [e.payload for e in events if isinstance(e, AudioEvent)]


@pytest.fixture
def fresh() -> TelnyxProtocol:
    return TelnyxProtocol()


@pytest.fixture
def proto() -> TelnyxProtocol:
    codec = TelnyxProtocol()
    codec.parse(CONNECTED)
    codec.parse(START)
    return codec


def test_satisfies_the_media_protocol_interface() -> None:
    codec: MediaProtocol = TelnyxProtocol()
    assert codec.name == "telnyx"
    assert codec.audio_format == PCMU


def test_constructor_refuses_a_negative_window() -> None:
    with pytest.raises(ValueError, match="reorder_window"):
        TelnyxProtocol(reorder_window=-1)


# --- inbound ---------------------------------------------------------------------------


def test_connected_keeps_the_version(fresh: TelnyxProtocol) -> None:
    assert fresh.parse(CONNECTED) == [ConnectedEvent()]
    assert fresh.version == "1.0.0"


def test_start_names_the_call_stream_numbers_and_format(fresh: TelnyxProtocol) -> None:
    assert fresh.parse(START) == [
        StartEvent(
            custom_parameters={"client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d"},
            call_id=CCID,
            stream_id=SID,
            audio_format=PCMU,
        )
    ]
    assert fresh.stream_id == SID
    assert fresh.call_control_id == CCID
    assert fresh.call_session_id == "ff55a038-6f5d-11ef-9692-02420aeffb1f"
    assert fresh.client_state == "aGF2ZSBhIG5pY2UgZGF5ID1d"
    assert (fresh.from_number, fresh.to_number) == ("+13122010094", "+13122123456")


def test_the_older_mime_spelling_of_the_encoding(fresh: TelnyxProtocol) -> None:
    # Telnyx's Call Control reference shows "audio/x-mulaw" with a v2 call_control_id.
    fmt = {"encoding": "audio/x-mulaw", "sample_rate": 8000, "channels": 1}
    (event,) = fresh.parse(start_with(media_format=fmt, client_state=None))
    assert isinstance(event, StartEvent)
    assert event.audio_format == PCMU
    assert event.custom_parameters == {}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"encoding": "PCMA", "sample_rate": 8000, "channels": 1}, PCMA),
        ({"encoding": "audio/x-alaw", "sample_rate": "8000"}, PCMA),
        (
            {"encoding": "L16", "sample_rate": 16000, "channels": 1},
            AudioFormat(AudioEncoding.PCM16, 16000, 1),
        ),
        ({"encoding": "l16", "sample_rate": "8000"}, AudioFormat(AudioEncoding.PCM16, 8000, 1)),
        ({}, PCMU),
    ],
)
def test_other_supported_formats(
    fresh: TelnyxProtocol, fmt: dict[str, object], expected: AudioFormat
) -> None:
    (event,) = fresh.parse(start_with(media_format=fmt))
    assert isinstance(event, StartEvent)
    assert event.audio_format == expected == fresh.audio_format


def test_start_without_media_format_is_pcmu(fresh: TelnyxProtocol) -> None:
    (event,) = fresh.parse(json.dumps({"event": "start", "stream_id": SID, "start": {}}))
    assert event == StartEvent(stream_id=SID, audio_format=PCMU)


@pytest.mark.parametrize(
    "fmt",
    [
        {"encoding": "G722", "sample_rate": 16000},
        {"encoding": "OPUS", "sample_rate": 16000},
        {"encoding": "AMR-WB", "sample_rate": 16000},
        {"encoding": "PCMU", "sample_rate": 16000},
        {"encoding": "L16", "sample_rate": 24000},
        {"encoding": "PCMU", "sample_rate": 8000, "channels": 2},
        {"encoding": "PCMU", "sample_rate": True},
        {"encoding": "PCMU", "sample_rate": "fast"},
        {"encoding": 7},
    ],
)
def test_other_formats_are_unsupported(fresh: TelnyxProtocol, fmt: dict[str, object]) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(start_with(media_format=fmt))
    assert info.value.code == "unsupported_format"
    assert "start.media_format" in info.value.message
    assert fresh.stream_id is None  # a rejected start does not start the stream
    assert fresh.audio_format == PCMU


def test_custom_parameters_from_texml_parameters(fresh: TelnyxProtocol) -> None:
    frame = json.dumps(
        {
            "event": "start",
            "stream_id": SID,
            "customParameters": {"flow": "top"},
            "start": {
                "call_control_id": CCID,
                "client_state": "c3RhdGU=",
                "custom_parameters": {"persona": "Ava", "flow": "inner", "retries": 2},
            },
        }
    )
    (event,) = fresh.parse(frame)
    assert isinstance(event, StartEvent)
    # The start object's own parameters win over top-level ones and client_state.
    assert dict(event.custom_parameters) == {
        "client_state": "c3RhdGU=",
        "flow": "inner",
        "persona": "Ava",
        "retries": "2",
    }


def test_media_is_base64_decoded(proto: TelnyxProtocol) -> None:
    frame = bytes(range(160))
    assert proto.parse(media(frame, "1")) == [AudioEvent(frame)]
    assert proto.parse(media("fn5+fn5+", "2")) == [AudioEvent(b"~~~~~~")]


def test_outbound_track_is_dropped_and_empty_payload_gives_nothing(proto: TelnyxProtocol) -> None:
    assert proto.parse(media(b"\x01" * 160, "1", track="outbound")) == []
    assert proto.parse(media("", "1")) == []
    assert proto.parse(media(b"\x02", "2")) == [AudioEvent(b"\x02")]


def test_l16_is_swapped_from_network_byte_order(fresh: TelnyxProtocol) -> None:
    fresh.parse(start_with(media_format={"encoding": "L16", "sample_rate": 16000}))
    big_endian = b"\x12\x34\xab\xcd"
    assert fresh.parse(media(big_endian, "1")) == [AudioEvent(b"\x34\x12\xcd\xab")]
    sent = json.loads(fresh.format_audio(b"\x34\x12\xcd\xab\x99"))  # odd byte dropped
    assert base64.b64decode(sent["media"]["payload"]) == big_endian
    with pytest.raises(ProtocolError, match="whole 16-bit samples"):
        fresh.parse(media(b"\x01\x02\x03", "2"))


def test_dtmf_mark_and_stop(proto: TelnyxProtocol) -> None:
    dtmf = {
        "event": "dtmf",
        "stream_id": SID,
        "occurred_at": "2025-06-05T08:54:19.698408Z",
        "sequence_number": "5",
        "dtmf": {"digit": "1"},
    }
    assert proto.parse(json.dumps(dtmf)) == [DtmfEvent("1")]
    mark = {"event": "mark", "sequence_number": "6", "stream_id": SID, "mark": {"name": "m1"}}
    assert proto.parse(json.dumps(mark)) == [MarkEvent("m1")]
    stop = {
        "event": "stop",
        "sequence_number": "7",
        "stop": {"user_id": START_BODY["user_id"], "call_control_id": CCID},
        "stream_id": SID,
    }
    assert proto.parse(json.dumps(stop)) == [StopEvent()]


# --- ordering ----------------------------------------------------------------------------


def test_in_order_frames_flow_straight_through(proto: TelnyxProtocol) -> None:
    for n in range(1, 6):
        assert audio_of(proto.parse(media(bytes([n]), str(n)))) == [bytes([n])]
    assert (proto.dropped_chunks, proto.lost_chunks) == (0, 0)


def test_a_swapped_pair_is_put_back_in_order(proto: TelnyxProtocol) -> None:
    assert audio_of(proto.parse(media(b"\x01", "1"))) == [b"\x01"]
    assert proto.parse(media(b"\x03", "3")) == []  # waits for chunk 2
    assert audio_of(proto.parse(media(b"\x02", "2"))) == [b"\x02", b"\x03"]
    assert audio_of(proto.parse(media(b"\x04", "4"))) == [b"\x04"]


def test_a_late_frame_and_a_duplicate_are_dropped(proto: TelnyxProtocol) -> None:
    proto.parse(media(b"\x01", "1"))
    proto.parse(media(b"\x02", "2"))
    assert proto.parse(media(b"\x02", "2")) == []  # duplicate
    assert proto.parse(media(b"\x01", "1")) == []  # late
    assert proto.parse(media(b"\x04", "4")) == []
    assert proto.parse(media(b"\x04", "4")) == []  # duplicate of one being held
    assert proto.dropped_chunks == 3


def test_a_lost_frame_is_given_up_when_the_window_fills(proto: TelnyxProtocol) -> None:
    proto.parse(media(b"\x01", 1))  # a JSON number is a chunk too
    # Chunk 2 never comes; three early frames wait (the default window) ...
    for n in (3, 4, 5):
        assert proto.parse(media(bytes([n]), str(n))) == []
    # ... and the fourth releases them all, in order.
    assert audio_of(proto.parse(media(b"\x06", "6"))) == [b"\x03", b"\x04", b"\x05", b"\x06"]
    assert proto.lost_chunks == 1
    assert proto.parse(media(b"\x02", "2")) == []  # too late now


def test_stop_releases_what_is_still_waiting(proto: TelnyxProtocol) -> None:
    proto.parse(media(b"\x01", "1"))
    proto.parse(media(b"\x04", "4"))
    proto.parse(media(b"\x03", "3"))
    events = proto.parse('{"event":"stop","stream_id":"' + SID + '"}')
    assert events == [AudioEvent(b"\x03"), AudioEvent(b"\x04"), StopEvent()]


def test_a_restarted_counter_is_followed_not_dropped(proto: TelnyxProtocol) -> None:
    for n in range(100, 103):
        proto.parse(media(b"\x07", str(n)))
    assert audio_of(proto.parse(media(b"\x01", "1"))) == [b"\x01"]
    assert audio_of(proto.parse(media(b"\x02", "2"))) == [b"\x02"]


def test_window_zero_releases_at_once() -> None:
    codec = TelnyxProtocol(reorder_window=0)
    codec.parse(START)
    codec.parse(media(b"\x01", "1"))
    assert audio_of(codec.parse(media(b"\x03", "3"))) == [b"\x03"]
    assert codec.parse(media(b"\x02", "2")) == []
    assert codec.lost_chunks == 1


def test_frames_without_a_chunk_pass_through(proto: TelnyxProtocol) -> None:
    assert proto.parse(media(b"\x05")) == [AudioEvent(b"\x05")]


# --- error frames -----------------------------------------------------------------------


def test_error_frame_is_logged_and_kept_not_fatal(
    proto: TelnyxProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    frame = {
        "stream_id": SID,
        "event": "error",
        "sequence_number": "6",
        "error": {"title": "rate_limit_reached", "code": "100005", "detail": "Too many requests"},
    }
    with caplog.at_level(logging.WARNING, logger="realtime_voice.protocols.telnyx"):
        assert proto.parse(json.dumps(frame)) == []
    assert proto.last_error == TelnyxStreamError(
        "100005", "rate_limit_reached", "Too many requests"
    )
    assert proto.error_count == 1
    assert "100005" in caplog.text and "rate_limit_reached" in caplog.text
    # The stream goes on.
    assert proto.parse(media(b"\x01", "1")) == [AudioEvent(b"\x01")]


def test_error_frame_before_start_and_with_a_numeric_code(fresh: TelnyxProtocol) -> None:
    assert fresh.parse('{"event":"error","error":{"code":100003,"title":"malformed_frame"}}') == []
    assert fresh.last_error == TelnyxStreamError("100003", "malformed_frame", "")


# --- outbound ---------------------------------------------------------------------------


def test_outbound_frames_are_telnyx_shaped(proto: TelnyxProtocol) -> None:
    assert proto.format_audio(b"\xff\x7f") == '{"event":"media","media":{"payload":"/38="}}'
    assert proto.format_mark("greeting") == '{"event":"mark","mark":{"name":"greeting"}}'
    assert proto.format_clear() == '{"event":"clear"}'
    assert proto.format_transfer({"phoneNumber": "+15555550100"}) is None
    assert proto.format_hangup("done") is None
    assert proto.format_error("bad_message", "x") is None


@pytest.mark.parametrize("call", ["audio", "mark", "clear"])
def test_outbound_before_start_is_a_programming_error(fresh: TelnyxProtocol, call: str) -> None:
    with pytest.raises(RuntimeError, match="no Telnyx stream yet"):
        if call == "audio":
            fresh.format_audio(b"\x00")
        elif call == "mark":
            fresh.format_mark("m")
        else:
            fresh.format_clear()


# --- malformed frames name the field ----------------------------------------------------

BAD_AFTER_START = [
    (b"\x00\x01", "only text frames"),
    ("not json", "not valid JSON"),
    ("[]", "got list"),
    ("{}", "no 'event' field"),
    ('{"event":"playAudio"}', "unknown event 'playAudio'"),
    ('{"event":"media"}', "needs a 'media' object"),
    ('{"event":"media","media":{}}', "media.payload must be a base64 string"),
    ('{"event":"media","media":{"payload":"fn5"}}', "media.payload is not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+\\u00e9"}}', "media.payload is not valid base64"),
    ('{"event":"media","media":{"track":"both","payload":"fn5+"}}', "media.track"),
    ('{"event":"media","media":{"chunk":"two","payload":"fn5+"}}', "media.chunk"),
    ('{"event":"media","media":{"chunk":-1,"payload":"fn5+"}}', "media.chunk"),
    ('{"event":"media","media":{"chunk":"' + "9" * 40 + '","payload":"fn5+"}}', "media.chunk"),
    ('{"event":"media","media":{"chunk":true,"payload":"fn5+"}}', "media.chunk"),
    ('{"event":"media","stream_id":"other","media":{"payload":"fn5+"}}', "stream_id"),
    ('{"event":"dtmf","dtmf":{"digit":"x"}}', "dtmf.digit"),
    ('{"event":"dtmf"}', "needs a 'dtmf' object"),
    ('{"event":"mark","mark":{"name":""}}', "mark.name"),
    ('{"event":"error","error":"boom"}', "needs a 'error' object"),
    ('{"event":"error","error":{"detail":["x"]}}', "error.detail must be a string"),
    ('{"event":"connected","version":1}', "connected.version must be a string"),
    ('{"event":"start","stream_id":"again","start":{}}', "duplicate start"),
]


@pytest.mark.parametrize(("frame", "problem"), BAD_AFTER_START)
def test_malformed_frames_are_protocol_errors_naming_the_problem(
    proto: TelnyxProtocol, frame: str | bytes, problem: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.parse(frame)
    assert info.value.code == "bad_message"
    assert problem in info.value.message
    assert proto.stream_id == SID  # the stream goes on


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        ({}, "needs a 'start' object"),
        ({"start": {}}, "non-empty stream_id"),
        ({"stream_id": "", "start": {}}, "non-empty stream_id"),
        ({"stream_id": SID, "start": {"call_control_id": 5}}, "start.call_control_id"),
        ({"stream_id": SID, "start": {"from": ["x"]}}, "start.from"),
        ({"stream_id": SID, "start": {"media_format": "PCMU"}}, "start.media_format"),
        ({"stream_id": SID, "start": {"custom_parameters": [1]}}, "custom_parameters"),
    ],
)
def test_malformed_start(fresh: TelnyxProtocol, start: dict[str, object], problem: str) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(json.dumps({"event": "start", **start}))
    assert problem in info.value.message
    assert fresh.stream_id is None


@pytest.mark.parametrize(
    "frame",
    [media(b"\x01", "1"), '{"event":"dtmf","dtmf":{"digit":"1"}}', '{"event":"stop"}'],
)
def test_events_before_start_are_rejected(fresh: TelnyxProtocol, frame: str) -> None:
    fresh.parse(CONNECTED)
    with pytest.raises(ProtocolError, match="before start"):
        fresh.parse(frame)
