"""Plivo audio-stream codec: literal Plivo frames in both directions.

The frames follow plivo.com/docs/voice/audio-streaming/audio-streaming (the Stream
Event Protocol) and the checkpoint / clearAudio / playAudio pages under
plivo.com/docs/voice/xml/the-stream-element/.
"""

from __future__ import annotations

import base64
import json

import pytest

from realtime_voice.audio.format import MULAW_8K, AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaProtocol,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.plivo import PlivoProtocol, parse_extra_headers

CALL = "12345678-1234-1234-1234-123456789abc"
STREAM = "87654321-4321-4321-4321-cba987654321"
TOKEN = "1765120000.AbC-dEf_gh12.q1w2e3r4t5y6u7i8o9p0-_ASDFGHJKLzxcvbnm1234567"

# The docs' start example, verbatim in shape.
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": CALL,
            "streamId": STREAM,
            "accountId": "MAXXXXXXXXXXXXXXXXXX",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
        "extra_headers": "userId=12345;sessionId=abc-xyz",
    }
)
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": 42,
        "streamId": STREAM,
        "media": {
            "track": "inbound",
            "timestamp": "1705312200000",
            "chunk": 41,
            "payload": base64.b64encode(b"\xff\x7f" * 80).decode(),
        },
        "extra_headers": "userId=12345;sessionId=abc-xyz",
    }
)


def started(start: str = START, **kwargs: AudioFormat) -> tuple[PlivoProtocol, StartEvent]:
    codec = PlivoProtocol(**kwargs)
    (event,) = codec.parse(start)
    assert isinstance(event, StartEvent)
    return codec, event


def start_with(**changes: object) -> str:
    doc = json.loads(START)
    for key, value in changes.items():
        if key in ("extra_headers", "extraHeaders"):
            doc[key] = value
        elif value is None:
            doc["start"].pop(key, None)
        else:
            doc["start"][key] = value
    return json.dumps(doc)


def test_it_is_a_media_protocol() -> None:
    codec: MediaProtocol = PlivoProtocol()
    assert codec.name == "plivo"
    assert codec.audio_format == MULAW_8K


def test_start_names_the_call_stream_and_extra_headers() -> None:
    codec, event = started()
    assert event.call_id == CALL  # Plivo's CallUUID: what the answer webhook bound the token to
    assert event.stream_id == STREAM
    assert event.audio_format == MULAW_8K
    assert dict(event.custom_parameters) == {"userId": "12345", "sessionId": "abc-xyz"}
    assert (codec.call_uuid, codec.stream_id, codec.account_id) == (
        CALL,
        STREAM,
        "MAXXXXXXXXXXXXXXXXXX",
    )
    assert (codec.from_number, codec.to_number) == (None, None)


def test_the_hex_token_from_our_answer_xml_becomes_custom_parameters_token() -> None:
    _, event = started(start_with(extra_headers=f"tokenhex={TOKEN.encode().hex()}"))
    assert dict(event.custom_parameters) == {"token": TOKEN}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("test1=12,test2=123", {"test1": "12", "test2": "123"}),  # the <Stream> docs' example
        ("a=1; b=2 ,c=", {"a": "1", "b": "2", "c": ""}),
        ("token=abc", {"token": "abc"}),
        ({"token": "abc", "n": 5}, {"token": "abc", "n": "5"}),
        ('{"token": "abc"}', {"token": "abc"}),
        ("", {}),
        (None, {}),
    ],
)
def test_extra_headers_in_every_shape(raw: object, expected: dict[str, str]) -> None:
    assert parse_extra_headers(raw) == expected


def test_a_plain_token_wins_over_tokenhex() -> None:
    assert parse_extra_headers(f"token=plain;tokenhex={b'other'.hex()}") == {"token": "plain"}


def test_start_custom_parameters_are_kept_below_extra_headers() -> None:
    # An older release of Plivo's Java stream SDK reads start.customParameters.
    doc = json.loads(START)
    doc["start"]["customParameters"] = {"persona": "bella", "userId": "overridden"}
    _, event = started(json.dumps(doc))
    assert dict(event.custom_parameters) == {
        "persona": "bella",
        "userId": "12345",
        "sessionId": "abc-xyz",
    }


def test_extra_headers_inside_start_or_camel_case_are_read_too() -> None:
    doc = json.loads(START)
    del doc["extra_headers"]
    doc["start"]["extra_headers"] = "a=1;b=2"
    doc["extraHeaders"] = "b=3"
    _, event = started(json.dumps(doc))
    assert dict(event.custom_parameters) == {"a": "1", "b": "3"}


@pytest.mark.parametrize(
    ("media_format", "expected"),
    [
        ({"encoding": "audio/x-mulaw", "sampleRate": 8000}, MULAW_8K),
        ({"encoding": "audio/x-l16", "sampleRate": 8000}, AudioFormat(AudioEncoding.PCM16, 8000)),
        (
            {"encoding": "audio/x-l16", "sampleRate": "16000"},
            AudioFormat(AudioEncoding.PCM16, 16000),
        ),
        ({"encoding": "audio/x-l16;rate=16000"}, AudioFormat(AudioEncoding.PCM16, 16000)),
        ({"encoding": "AUDIO/X-MULAW"}, MULAW_8K),
    ],
)
def test_supported_media_formats(media_format: dict[str, object], expected: AudioFormat) -> None:
    codec, event = started(start_with(mediaFormat=media_format))
    assert event.audio_format == expected == codec.audio_format


@pytest.mark.parametrize(
    "media_format",
    [
        {"encoding": "audio/x-mulaw", "sampleRate": 16000},
        {"encoding": "audio/x-l16", "sampleRate": 24000},
        {"encoding": "audio/x-alaw", "sampleRate": 8000},
        {"encoding": "audio/x-l16", "sampleRate": True},
        {"encoding": 7},
    ],
)
def test_other_media_formats_are_refused(media_format: dict[str, object]) -> None:
    codec = PlivoProtocol()
    with pytest.raises(ProtocolError) as info:
        codec.parse(start_with(mediaFormat=media_format))
    assert info.value.code == "unsupported_format"
    assert "mediaFormat" in info.value.message
    assert codec.stream_id is None  # a refused start leaves the stream unstarted


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"callId": None}, "start.callId"),
        ({"callId": 5}, "start.callId"),
        ({"streamId": ""}, "start.streamId"),
        ({"accountId": 1}, "start.accountId"),
        ({"tracks": "inbound"}, "start.tracks"),
        ({"mediaFormat": "mulaw"}, "start.mediaFormat"),
        ({"extra_headers": 12}, "start.extra_headers"),
        ({"extra_headers": "tokenhex=zz"}, "start.extra_headers.tokenhex"),
    ],
)
def test_a_malformed_start_names_the_field(changes: dict[str, object], field: str) -> None:
    codec = PlivoProtocol()
    with pytest.raises(ProtocolError) as info:
        codec.parse(start_with(**changes))
    assert info.value.code == "bad_message"
    assert field in info.value.message
    assert codec.stream_id is None


def test_media_dtmf_checkpoint_echo_and_stop() -> None:
    codec, _ = started()
    assert codec.parse(MEDIA) == [AudioEvent(b"\xff\x7f" * 80)]
    dtmf = {"event": "dtmf", "sequenceNumber": 7, "streamId": STREAM, "dtmf": {"digit": "5"}}
    assert codec.parse(json.dumps(dtmf)) == [DtmfEvent("5")]
    played = {"event": "playedStream", "streamId": STREAM, "name": "customer greeting audio"}
    assert codec.parse(json.dumps(played)) == [MarkEvent("customer greeting audio")]
    # Plivo's help centre spells the echo "played".
    assert codec.parse(json.dumps(dict(played, event="played"))) == [
        MarkEvent("customer greeting audio")
    ]
    cleared = {"sequenceNumber": 0, "event": "clearedAudio", "streamId": STREAM}
    assert codec.parse(json.dumps(cleared)) == []
    stop = {"event": "stop", "sequenceNumber": 9, "streamId": STREAM, "reason": "hangup"}
    assert codec.parse(json.dumps(stop)) == [StopEvent()]


def test_outbound_track_and_empty_media_give_no_audio() -> None:
    codec, _ = started()
    outbound = json.loads(MEDIA)
    outbound["media"]["track"] = "outbound"
    assert codec.parse(json.dumps(outbound)) == []
    empty = json.loads(MEDIA)
    empty["media"]["payload"] = ""
    assert codec.parse(json.dumps(empty)) == []


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"\x00\x01", "binary frame"),
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"streamId": "x"}', "no 'event'"),
        ('{"event": "connected"}', "unknown event 'connected'"),
        (json.dumps({"event": "media", "streamId": STREAM}), "'media' object"),
        (json.dumps({"event": "media", "media": {"payload": "@@"}}), "not valid base64"),
        (json.dumps({"event": "media", "media": {"payload": 5}}), "media.payload"),
        (json.dumps({"event": "media", "media": {"track": "both", "payload": ""}}), "media.track"),
        (json.dumps({"event": "dtmf", "dtmf": {"digit": "x"}}), "dtmf.digit"),
        (json.dumps({"event": "playedStream", "name": ""}), "playedStream.name"),
        (json.dumps({"event": "clearedAudio", "streamId": "other"}), "streamId 'other'"),
        (START, "duplicate start"),
    ],
)
def test_bad_frames_after_start_are_protocol_errors(frame: str | bytes, fragment: str) -> None:
    codec, _ = started()
    with pytest.raises(ProtocolError) as info:
        codec.parse(frame)
    assert info.value.code == "bad_message"
    assert fragment in info.value.message
    assert codec.stream_id == STREAM


@pytest.mark.parametrize("event", ["media", "dtmf", "playedStream", "clearedAudio", "stop"])
def test_stream_events_before_start_are_refused(event: str) -> None:
    with pytest.raises(ProtocolError, match="before start"):
        PlivoProtocol().parse(json.dumps({"event": event, "streamId": STREAM}))


def test_outbound_messages_are_plivos_literal_shapes() -> None:
    codec, _ = started()
    frame = bytes(range(160))
    assert codec.format_audio(frame) == (
        f'{{"event":"playAudio","streamId":"{STREAM}","media":{{"contentType":"audio/x-mulaw",'
        '"sampleRate":8000,'
        f'"payload":"{base64.b64encode(frame).decode()}"}}}}'
    )
    assert json.loads(codec.format_mark("response_done")) == {
        "event": "checkpoint",
        "streamId": STREAM,
        "name": "response_done",
    }
    assert json.loads(codec.format_clear()) == {"event": "clearAudio", "streamId": STREAM}
    assert codec.format_transfer({"phoneNumber": "+14155550100"}) is None
    assert codec.format_hangup("done") is None
    assert codec.format_error("bad_message", "x") is None


def test_l16_streams_send_l16_at_their_rate() -> None:
    codec, _ = started(start_with(mediaFormat={"encoding": "audio/x-l16", "sampleRate": 16000}))
    sent = json.loads(codec.format_audio(bytes(640)))
    assert sent["media"]["contentType"] == "audio/x-l16"
    assert sent["media"]["sampleRate"] == 16000
    assert base64.b64decode(sent["media"]["payload"]) == bytes(640)


def test_the_constructor_format_holds_until_start_says_otherwise() -> None:
    pcm = AudioFormat(AudioEncoding.PCM16, 16000)
    codec, event = started(start_with(mediaFormat=None), audio_format=pcm)
    assert event.audio_format == pcm == codec.audio_format


@pytest.mark.parametrize("method", ["format_audio", "format_mark", "format_clear"])
def test_formatting_before_start_is_a_programming_error(method: str) -> None:
    codec = PlivoProtocol()
    args: tuple[object, ...] = {"format_audio": (b"\x00",), "format_mark": ("m",)}.get(method, ())
    with pytest.raises(RuntimeError, match="streamId"):
        getattr(codec, method)(*args)
