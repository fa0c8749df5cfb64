"""RingCentral bridge protocol codec: literal wire frames in both directions.

The frames are docs/PROTOCOLS.md §2.
"""

from __future__ import annotations

import json

import pytest

from realtime_voice.audio.format import AudioEncoding, AudioFormat, UnsupportedFormatError
from realtime_voice.protocols.base import (
    AudioEvent,
    ConfigEvent,
    DtmfEvent,
    MarkEvent,
    MediaProtocol,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.ringcentral_bridge import RingCentralBridgeProtocol


@pytest.fixture
def proto() -> RingCentralBridgeProtocol:
    return RingCentralBridgeProtocol()


def test_satisfies_the_media_protocol_interface() -> None:
    codec: MediaProtocol = RingCentralBridgeProtocol()
    assert codec.name == "ringcentral"
    assert codec.audio_format == AudioFormat(AudioEncoding.MULAW, 8000, 1)


# --- inbound -------------------------------------------------------------------------


def test_binary_frame_is_audio_unchanged(proto: RingCentralBridgeProtocol) -> None:
    payload = bytes(range(256)) * 3
    assert proto.parse(payload) == [AudioEvent(payload)]


def test_empty_binary_frame_gives_no_event(proto: RingCentralBridgeProtocol) -> None:
    assert proto.parse(b"") == []


def test_start_with_custom_parameters(proto: RingCentralBridgeProtocol) -> None:
    frame = (
        '{"type":"start","customParameters":{"persona":"host","greeting_text":"Hi there!",'
        '"customer_name":"Ana"}}'
    )
    assert proto.parse(frame) == [
        StartEvent(
            custom_parameters={
                "persona": "host",
                "greeting_text": "Hi there!",
                "customer_name": "Ana",
            }
        )
    ]


def test_start_without_parameters(proto: RingCentralBridgeProtocol) -> None:
    (event,) = proto.parse('{"type":"start"}')
    assert isinstance(event, StartEvent)
    assert dict(event.custom_parameters) == {}
    assert event.call_id is None and event.stream_id is None


def test_start_parameter_values_are_coerced_to_json_text(proto: RingCentralBridgeProtocol) -> None:
    frame = json.dumps(
        {
            "type": "start",
            "customParameters": {
                "n": 5,
                "f": 1.5,
                "b": True,
                "none": None,
                "obj": {"a": [1, 2]},
            },
        }
    )
    (event,) = proto.parse(frame)
    assert isinstance(event, StartEvent)
    assert dict(event.custom_parameters) == {
        "n": "5",
        "f": "1.5",
        "b": "true",
        "none": "",
        "obj": '{"a":[1,2]}',
    }


def test_start_ignores_unknown_fields(proto: RingCentralBridgeProtocol) -> None:
    assert proto.parse('{"type":"start","callId":"c1","extra":[1]}') == [StartEvent()]


def test_config_changes_the_format(proto: RingCentralBridgeProtocol) -> None:
    fmt = AudioFormat(AudioEncoding.PCM16, 16000, 2)
    frame = '{"type":"config","encoding":"pcm16","sampleRate":16000,"channels":2}'
    assert proto.parse(frame) == [ConfigEvent(fmt)]
    assert proto.audio_format == fmt


def test_config_missing_fields_keep_current_values() -> None:
    proto = RingCentralBridgeProtocol(AudioFormat(AudioEncoding.ALAW, 16000, 2))
    assert proto.parse('{"type":"config","sampleRate":8000}') == [
        ConfigEvent(AudioFormat(AudioEncoding.ALAW, 8000, 2))
    ]
    assert proto.parse('{"type":"config","encoding":"mulaw"}') == [
        ConfigEvent(AudioFormat(AudioEncoding.MULAW, 8000, 2))
    ]
    assert proto.parse('{"type":"config"}') == [
        ConfigEvent(AudioFormat(AudioEncoding.MULAW, 8000, 2))
    ]


def test_config_accepts_numbers_as_strings(proto: RingCentralBridgeProtocol) -> None:
    frame = '{"type":"config","encoding":"ALAW","sampleRate":"16000","channels":"1"}'
    assert proto.parse(frame) == [ConfigEvent(AudioFormat(AudioEncoding.ALAW, 16000, 1))]


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"config","encoding":"opus"}',
        '{"type":"config","sampleRate":44100}',
        '{"type":"config","channels":3}',
        '{"type":"config","sampleRate":"fast"}',
    ],
)
def test_config_unsupported_format_keeps_the_old_one(
    proto: RingCentralBridgeProtocol, frame: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.parse(frame)
    assert info.value.code == "unsupported_format"
    assert "unsupported audio format" in info.value.message
    assert proto.audio_format == AudioFormat()


@pytest.mark.parametrize("digit", [*"0123456789*#ABCD"])
def test_dtmf_digits(proto: RingCentralBridgeProtocol, digit: str) -> None:
    assert proto.parse(json.dumps({"type": "dtmf", "digit": digit})) == [DtmfEvent(digit)]


def test_mark(proto: RingCentralBridgeProtocol) -> None:
    assert proto.parse('{"type":"mark","name":"response_3_done"}') == [MarkEvent("response_3_done")]


def test_stop(proto: RingCentralBridgeProtocol) -> None:
    assert proto.parse('{"type":"stop"}') == [StopEvent()]


def test_lone_surrogate_in_text_is_handled(proto: RingCentralBridgeProtocol) -> None:
    assert proto.parse('{"type":"mark","name":"a\ud800"}') == [MarkEvent("a\ud800")]
    with pytest.raises(ProtocolError):
        proto.parse('{"type":"dtmf","digit":"\udc00"}')
    with pytest.raises(ProtocolError):
        proto.parse("\ud800")


BAD_FRAMES = [
    ("not json", "not valid JSON"),
    ("", "not valid JSON"),
    ('{"type":"stop"', "not valid JSON"),
    ("null", "got NoneType"),
    ("[]", "got list"),
    ('"x"', "got str"),
    ("5", "got int"),
    ("{}", "no 'type' field"),
    ('{"type":5}', "unknown message type 5"),
    ('{"type":null}', "no 'type' field"),
    ('{"type":"media","payload":"AAA="}', "unknown message type 'media'"),
    ('{"type":"START"}', "unknown message type 'START'"),
    ('{"type":"start","customParameters":[1]}', "customParameters must be an object"),
    ('{"type":"start","customParameters":"a=b"}', "customParameters must be an object"),
    ('{"type":"config","encoding":5}', "'encoding' must be a string"),
    ('{"type":"config","sampleRate":true}', "'sampleRate' must be an integer"),
    ('{"type":"config","channels":[1]}', "'channels' must be an integer"),
    ('{"type":"config","sampleRate":8000.5}', "'sampleRate' must be an integer"),
    ('{"type":"dtmf"}', "'digit' must be one of"),
    ('{"type":"dtmf","digit":5}', "'digit' must be one of"),
    ('{"type":"dtmf","digit":"55"}', "'digit' must be one of"),
    ('{"type":"dtmf","digit":"E"}', "'digit' must be one of"),
    ('{"type":"mark"}', "'name' must be a non-empty string"),
    ('{"type":"mark","name":""}', "'name' must be a non-empty string"),
    ('{"type":"mark","name":{"a":1}}', "'name' must be a non-empty string"),
    ("[" * 100_000, "nested too deeply"),
    ('{"type":"stop","n":' + "9" * 5000 + "}", "not valid JSON"),
]


@pytest.mark.parametrize(("frame", "expected"), BAD_FRAMES)
def test_bad_frames_raise_protocol_error_naming_the_problem(
    proto: RingCentralBridgeProtocol, frame: str, expected: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.parse(frame)
    assert info.value.code == "bad_message"
    assert expected in info.value.message
    # The codec stays usable after a bad frame.
    assert proto.parse('{"type":"stop"}') == [StopEvent()]


# --- outbound ------------------------------------------------------------------------


def test_audio_goes_out_unchanged(proto: RingCentralBridgeProtocol) -> None:
    frame = bytes(range(160))
    assert proto.format_audio(frame) == frame


def test_outbound_control_messages_exact(proto: RingCentralBridgeProtocol) -> None:
    assert proto.format_mark("greeting_done") == '{"type":"mark","name":"greeting_done"}'
    assert proto.format_clear() == '{"type":"clear"}'
    assert (
        proto.format_transfer({"phoneNumber": "+15555550100"})
        == '{"type":"transfer","target":{"phoneNumber":"+15555550100"}}'
    )
    assert (
        proto.format_transfer({"extensionNumber": "104"})
        == '{"type":"transfer","target":{"extensionNumber":"104"}}'
    )
    assert proto.format_hangup("completed") == '{"type":"hangup","reason":"completed"}'
    assert (
        proto.format_error("bad_message", "text frame is not valid JSON")
        == '{"type":"error","code":"bad_message","message":"text frame is not valid JSON"}'
    )


def test_outbound_strings_are_escaped_into_valid_utf8_json(
    proto: RingCentralBridgeProtocol,
) -> None:
    message = 'quote " backslash \\ newline \n surrogate \ud800 accent é'
    wire = proto.format_error("bad_message", message)
    wire.encode("utf-8")  # must not raise: the socket sends UTF-8
    assert json.loads(wire) == {"type": "error", "code": "bad_message", "message": message}


def test_mark_round_trips_through_the_gateway_echo(proto: RingCentralBridgeProtocol) -> None:
    wire = proto.format_mark("response_7_done")
    assert proto.parse(wire) == [MarkEvent("response_7_done")]


# --- query negotiation ---------------------------------------------------------------


def test_format_from_query_defaults() -> None:
    assert RingCentralBridgeProtocol.format_from_query({}) == AudioFormat()


def test_format_from_query_reads_all_parameters() -> None:
    query = {"encoding": "pcm16", "sample_rate": "16000", "channels": "2", "call_id": "x"}
    assert RingCentralBridgeProtocol.format_from_query(query) == AudioFormat(
        AudioEncoding.PCM16, 16000, 2
    )


@pytest.mark.parametrize(
    "query",
    [
        {"encoding": "opus"},
        {"encoding": ""},
        {"sample_rate": "44100"},
        {"sample_rate": "abc"},
        {"channels": "6"},
    ],
)
def test_format_from_query_rejects_unsupported(query: dict[str, str]) -> None:
    with pytest.raises(UnsupportedFormatError):
        RingCentralBridgeProtocol.format_from_query(query)
