"""Twilio Media Streams codec: literal Twilio frames in both directions.

The frames are docs/RINGCENTRAL.md §4.
"""

from __future__ import annotations

import base64
import json
import random

import pytest

from realtime_voice.audio.format import MULAW_8K
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
from realtime_voice.protocols.twilio import TwilioMediaStreamsProtocol

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"

CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
    '"start":{"accountSid":"AC123","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
    '"callSid":"CA123","tracks":["inbound"],'
    '"customParameters":{"FirstName":"Jane","LastName":"Doe","token":"t0k"},'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}'
)


def media(payload: str, **extra: str) -> str:
    body = {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload, **extra}
    return json.dumps({"event": "media", "sequenceNumber": "3", "streamSid": SID, "media": body})


@pytest.fixture
def fresh() -> TwilioMediaStreamsProtocol:
    return TwilioMediaStreamsProtocol()


@pytest.fixture
def proto() -> TwilioMediaStreamsProtocol:
    codec = TwilioMediaStreamsProtocol()
    codec.parse(CONNECTED)
    codec.parse(START)
    return codec


def test_satisfies_the_media_protocol_interface() -> None:
    codec: MediaProtocol = TwilioMediaStreamsProtocol()
    assert codec.name == "twilio"
    assert codec.audio_format == MULAW_8K


# --- inbound -------------------------------------------------------------------------


def test_connected(fresh: TwilioMediaStreamsProtocol) -> None:
    assert fresh.parse(CONNECTED) == [ConnectedEvent()]


def test_start_gives_parameters_call_and_stream(fresh: TwilioMediaStreamsProtocol) -> None:
    assert fresh.parse(START) == [
        StartEvent(
            custom_parameters={"FirstName": "Jane", "LastName": "Doe", "token": "t0k"},
            call_id="CA123",
            stream_id=SID,
            audio_format=MULAW_8K,
        )
    ]
    assert fresh.stream_sid == SID
    assert fresh.call_sid == "CA123"


def test_start_minimal_takes_stream_sid_from_start_object(
    fresh: TwilioMediaStreamsProtocol,
) -> None:
    (event,) = fresh.parse('{"event":"start","start":{"streamSid":"MZ1"}}')
    assert isinstance(event, StartEvent)
    assert event.stream_id == "MZ1"
    assert event.call_id is None
    assert dict(event.custom_parameters) == {}


def test_start_accepts_media_format_numbers_as_strings(fresh: TwilioMediaStreamsProtocol) -> None:
    frame = (
        '{"event":"start","streamSid":"MZ1","start":{"callSid":"CA1","mediaFormat":'
        '{"encoding":"audio/x-mulaw","sampleRate":"8000","channels":"1"}}}'
    )
    assert fresh.parse(frame)[0] == StartEvent(
        call_id="CA1", stream_id="MZ1", audio_format=MULAW_8K
    )


@pytest.mark.parametrize(
    "media_format",
    [
        {"encoding": "audio/x-l16", "sampleRate": 8000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
        {"encoding": 7, "sampleRate": 8000, "channels": 1},
    ],
)
def test_start_with_other_media_format_is_unsupported(
    fresh: TwilioMediaStreamsProtocol, media_format: dict[str, object]
) -> None:
    frame = json.dumps(
        {"event": "start", "streamSid": "MZ1", "start": {"mediaFormat": media_format}}
    )
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "unsupported_format"
    assert "audio/x-mulaw 8000 Hz mono" in info.value.message
    assert fresh.stream_sid is None  # a rejected start does not start the stream


def test_media_is_base64_decoded(proto: TwilioMediaStreamsProtocol) -> None:
    audio = bytes(range(160))
    assert proto.parse(media(base64.b64encode(audio).decode())) == [AudioEvent(audio)]
    assert proto.parse(media("fn5+fn5+")) == [AudioEvent(b"~~~~~~")]


def test_media_without_track_or_stream_sid(proto: TwilioMediaStreamsProtocol) -> None:
    assert proto.parse('{"event":"media","media":{"payload":"/w=="}}') == [AudioEvent(b"\xff")]


def test_outbound_track_and_empty_payload_give_no_event(proto: TwilioMediaStreamsProtocol) -> None:
    assert proto.parse(media("fn5+", track="outbound")) == []
    assert proto.parse(media("")) == []


def test_dtmf(proto: TwilioMediaStreamsProtocol) -> None:
    frame = (
        '{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
        '"dtmf":{"track":"inbound_track","digit":"1"}}'
    )
    assert proto.parse(frame) == [DtmfEvent("1")]


def test_mark(proto: TwilioMediaStreamsProtocol) -> None:
    frame = (
        '{"event":"mark","sequenceNumber":"4","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
        '"mark":{"name":"my label"}}'
    )
    assert proto.parse(frame) == [MarkEvent("my label")]


def test_stop(proto: TwilioMediaStreamsProtocol) -> None:
    frame = (
        '{"event":"stop","sequenceNumber":"5","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
        '"stop":{"accountSid":"AC123","callSid":"CA123"}}'
    )
    assert proto.parse(frame) == [StopEvent()]


@pytest.mark.parametrize(
    "frame",
    [
        media("fn5+"),
        '{"event":"dtmf","dtmf":{"digit":"1"}}',
        '{"event":"mark","mark":{"name":"x"}}',
        '{"event":"stop"}',
    ],
)
def test_events_before_start_are_rejected(fresh: TwilioMediaStreamsProtocol, frame: str) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "bad_message"
    assert "before start" in info.value.message


BAD_AFTER_START = [
    (b"\x00\x01", "only text frames"),
    (b"", "only text frames"),
    ("not json", "not valid JSON"),
    ("null", "got NoneType"),
    ("[]", "got list"),
    ('"x"', "got str"),
    ("{}", "no 'event' field"),
    ('{"event":5}', "unknown event 5"),
    ('{"event":"clear","streamSid":"MZ1"}', "unknown event 'clear'"),
    ('{"type":"stop"}', "no 'event' field"),
    ('{"event":"media"}', "needs a 'media' object"),
    ('{"event":"media","media":"fn5+"}', "needs a 'media' object"),
    ('{"event":"media","media":{}}', "payload must be a base64 string"),
    ('{"event":"media","media":{"payload":5}}', "payload must be a base64 string"),
    ('{"event":"media","media":{"payload":"fn5"}}', "not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+!!!!"}}', "not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+\\u00e9"}}', "not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+\\ud800"}}', "not valid base64"),
    ('{"event":"media","media":{"track":"both","payload":"fn5+"}}', "media.track must be"),
    ('{"event":"media","streamSid":"MZother","media":{"payload":"fn5+"}}', "not this stream's"),
    ('{"event":"dtmf"}', "needs a 'dtmf' object"),
    ('{"event":"dtmf","dtmf":{"digit":"x"}}', "dtmf.digit must be one of"),
    ('{"event":"dtmf","dtmf":{"digit":1}}', "dtmf.digit must be one of"),
    ('{"event":"mark","mark":{}}', "mark.name must be a non-empty string"),
    ('{"event":"mark","mark":{"name":""}}', "mark.name must be a non-empty string"),
    ('{"event":"mark","mark":[]}', "needs a 'mark' object"),
    ('{"event":"stop","streamSid":"MZother"}', "not this stream's"),
    (START, "duplicate start"),
]


@pytest.mark.parametrize(("frame", "expected"), BAD_AFTER_START)
def test_bad_frames_raise_protocol_error_naming_the_problem(
    proto: TwilioMediaStreamsProtocol, frame: str | bytes, expected: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.parse(frame)
    assert info.value.code == "bad_message"
    assert expected in info.value.message
    # The stream is unaffected: the next good frame still parses.
    assert proto.parse(media("/w==")) == [AudioEvent(b"\xff")]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"event":"start"}', "needs a 'start' object"),
        ('{"event":"start","start":{}}', "non-empty streamSid"),
        ('{"event":"start","streamSid":"","start":{}}', "non-empty streamSid"),
        ('{"event":"start","streamSid":5,"start":{}}', "non-empty streamSid"),
        ('{"event":"start","streamSid":"MZ1","start":{"callSid":5}}', "callSid must be a string"),
        (
            '{"event":"start","streamSid":"MZ1","start":{"customParameters":[]}}',
            "customParameters must be an object",
        ),
        (
            '{"event":"start","streamSid":"MZ1","start":{"mediaFormat":"mulaw"}}',
            "mediaFormat must be an object",
        ),
    ],
)
def test_bad_start_frames(fresh: TwilioMediaStreamsProtocol, frame: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "bad_message"
    assert expected in info.value.message
    assert fresh.stream_sid is None


# --- outbound ------------------------------------------------------------------------


def test_format_audio_exact_wire_json(proto: TwilioMediaStreamsProtocol) -> None:
    assert proto.format_audio(b"~~~~~~") == (
        '{"event":"media","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
        '"media":{"payload":"fn5+fn5+"}}'
    )


def test_format_audio_equals_json_dumps_for_random_frames(
    proto: TwilioMediaStreamsProtocol,
) -> None:
    rng = random.Random(7)
    for size in (0, 1, 2, 3, 159, 160, 161, 320, 4000):
        frame = rng.randbytes(size)
        expected = json.dumps(
            {
                "event": "media",
                "streamSid": SID,
                "media": {"payload": base64.b64encode(frame).decode("ascii")},
            },
            separators=(",", ":"),
        )
        assert proto.format_audio(frame) == expected


def test_format_audio_escapes_an_odd_stream_sid(fresh: TwilioMediaStreamsProtocol) -> None:
    sid = 'MZ"\\é\ud800'
    fresh.parse(json.dumps({"event": "start", "streamSid": sid, "start": {}}))
    wire = fresh.format_audio(b"\x01\x02")
    wire.encode("utf-8")
    assert json.loads(wire) == {"event": "media", "streamSid": sid, "media": {"payload": "AQI="}}
    assert json.loads(fresh.format_clear()) == {"event": "clear", "streamSid": sid}


def test_audio_round_trip_through_a_twilio_echo(proto: TwilioMediaStreamsProtocol) -> None:
    frame = bytes(range(255, 95, -1))
    sent = json.loads(proto.format_audio(frame))
    echoed = json.dumps({"event": "media", "streamSid": SID, "media": sent["media"]})
    assert proto.parse(echoed) == [AudioEvent(frame)]


def test_format_mark_and_clear_exact(proto: TwilioMediaStreamsProtocol) -> None:
    assert proto.format_mark("utterance-7-end") == (
        '{"event":"mark","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",'
        '"mark":{"name":"utterance-7-end"}}'
    )
    assert proto.format_clear() == (
        '{"event":"clear","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}'
    )
    assert json.loads(proto.format_mark('q"uote')) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": 'q"uote'},
    }


def test_mark_round_trips_through_twilio_echo(proto: TwilioMediaStreamsProtocol) -> None:
    sent = json.loads(proto.format_mark("greeting_done"))
    sent["sequenceNumber"] = "9"
    assert proto.parse(json.dumps(sent)) == [MarkEvent("greeting_done")]


def test_no_transfer_hangup_or_error_messages(proto: TwilioMediaStreamsProtocol) -> None:
    assert proto.format_transfer({"phoneNumber": "+15555550100"}) is None
    assert proto.format_hangup("completed") is None
    assert proto.format_error("bad_message", "nope") is None


def test_outbound_before_start_is_a_programming_error(fresh: TwilioMediaStreamsProtocol) -> None:
    with pytest.raises(RuntimeError, match="streamSid"):
        fresh.format_audio(b"\x00" * 160)
    with pytest.raises(RuntimeError, match="streamSid"):
        fresh.format_mark("m")
    with pytest.raises(RuntimeError, match="streamSid"):
        fresh.format_clear()
    fresh.parse(CONNECTED)
    with pytest.raises(RuntimeError):
        fresh.format_audio(b"\x00")
