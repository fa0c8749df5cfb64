"""Vonage Voice WebSocket codec: literal Vonage frames in both directions.

The frames follow developer.vonage.com/en/voice/voice-api/concepts/websockets: a
``websocket:connected`` text frame with the NCCO headers flattened in, then binary
16-bit PCM (640 bytes per 20 ms at 16 kHz), ``websocket:dtmf``, and the
``websocket:notify``/``websocket:cleared`` answers to our ``notify``/``clear``.
"""

from __future__ import annotations

import json

import pytest

from realtime_voice.audio.format import AudioEncoding, AudioFormat, UnsupportedFormatError
from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaProtocol,
    ProtocolError,
    StartEvent,
)
from realtime_voice.protocols.vonage import VonageProtocol, content_type

PCM_8K = AudioFormat(AudioEncoding.PCM16, 8000, 1)
PCM_16K = AudioFormat(AudioEncoding.PCM16, 16000, 1)
UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
CONNECTED = json.dumps(
    {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        "call_uuid": UUID,
        "token": "1765120000.abc.sig",
        "from": "447700900000",
        "to": "442079460000",
        "language": "en-GB",
    }
)


@pytest.fixture
def fresh() -> VonageProtocol:
    return VonageProtocol()


@pytest.fixture
def proto() -> VonageProtocol:
    codec = VonageProtocol()
    codec.parse(CONNECTED)
    return codec


def test_satisfies_the_media_protocol_interface() -> None:
    codec: MediaProtocol = VonageProtocol()
    assert codec.name == "vonage"
    assert codec.audio_format == PCM_16K
    assert VonageProtocol(sample_rate=8000).audio_format == PCM_8K


@pytest.mark.parametrize("rate", [24000, 44100, 0])
def test_constructor_refuses_a_rate_vonage_does_not_carry(rate: int) -> None:
    with pytest.raises(UnsupportedFormatError):
        VonageProtocol(sample_rate=rate)
    with pytest.raises(UnsupportedFormatError):
        content_type(rate)


def test_content_type_names_the_rate() -> None:
    assert content_type(16000) == "audio/l16;rate=16000"
    assert content_type(8000) == "audio/l16;rate=8000"


# --- inbound -------------------------------------------------------------------------


def test_connected_is_the_start_with_every_header(fresh: VonageProtocol) -> None:
    (event,) = fresh.parse(CONNECTED)
    assert event == StartEvent(
        custom_parameters={
            "call_uuid": UUID,
            "token": "1765120000.abc.sig",
            "from": "447700900000",
            "to": "442079460000",
            "language": "en-GB",
        },
        call_id=UUID,
        audio_format=PCM_16K,
    )
    assert fresh.connected
    assert fresh.call_uuid == UUID
    assert (fresh.from_number, fresh.to_number) == ("447700900000", "442079460000")


def test_docs_example_headers_of_any_json_type_become_strings(fresh: VonageProtocol) -> None:
    # The older guide's example: numbers, booleans, objects and lists as header values.
    frame = json.dumps(
        {
            "event": "websocket:connected",
            "content-type": "audio/l16;rate=8000",
            "name": "J Doe",
            "age": 40,
            "address": {"city": "New York City"},
            "system_roles": [183493, 22],
            "enable_auditing": False,
        }
    )
    (event,) = fresh.parse(frame)
    assert isinstance(event, StartEvent)
    assert event.call_id is None  # no call_uuid header: the server has no call to bind
    assert event.audio_format == PCM_8K
    assert dict(event.custom_parameters) == {
        "name": "J Doe",
        "age": "40",
        "address": '{"city":"New York City"}',
        "system_roles": "[183493,22]",
        "enable_auditing": "false",
    }
    assert fresh.audio_format == PCM_8K


def test_connected_without_content_type_keeps_the_constructor_rate() -> None:
    codec = VonageProtocol(sample_rate=8000)
    (event,) = codec.parse('{"event":"websocket:connected","call_uuid":"u1"}')
    assert event == StartEvent(
        custom_parameters={"call_uuid": "u1"}, call_id="u1", audio_format=PCM_8K
    )


@pytest.mark.parametrize(
    "value", ["audio/L16; rate=16000", "AUDIO/L16;RATE=16000", "audio/l16;rate=16000;x=1"]
)
def test_content_type_spellings(fresh: VonageProtocol, value: str) -> None:
    (event,) = fresh.parse(json.dumps({"event": "websocket:connected", "content-type": value}))
    assert isinstance(event, StartEvent) and event.audio_format == PCM_16K


@pytest.mark.parametrize(
    "value",
    [
        "audio/l16;rate=24000",
        "audio/l16;rate=44100",
        "audio/l16",
        "audio/pcmu;rate=8000",
        "audio/l16;rate=fast",
        "audio/l16;rate=-8000",
        "audio/l16;rate=١٦٠٠٠",  # Arabic-Indic digits: isdigit() but not ASCII
    ],
)
def test_other_content_types_are_unsupported(fresh: VonageProtocol, value: str) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(json.dumps({"event": "websocket:connected", "content-type": value}))
    assert info.value.code == "unsupported_format"
    assert "content-type" in info.value.message
    assert not fresh.connected  # a rejected connected does not start the stream
    assert fresh.audio_format == PCM_16K


def test_content_type_of_the_wrong_type_is_bad(fresh: VonageProtocol) -> None:
    with pytest.raises(ProtocolError, match="content-type must be a string") as info:
        fresh.parse('{"event":"websocket:connected","content-type":16000}')
    assert info.value.code == "bad_message"


def test_call_uuid_must_be_a_string(fresh: VonageProtocol) -> None:
    with pytest.raises(ProtocolError, match="'call_uuid' must be a string"):
        fresh.parse('{"event":"websocket:connected","call_uuid":7}')
    assert not fresh.connected


def test_numbers_sent_as_json_numbers_are_still_numbers(fresh: VonageProtocol) -> None:
    fresh.parse('{"event":"websocket:connected","from":447700900000,"to":"442079460000"}')
    assert (fresh.from_number, fresh.to_number) == ("447700900000", "442079460000")


def test_duplicate_connected_is_refused(proto: VonageProtocol) -> None:
    with pytest.raises(ProtocolError, match="duplicate websocket:connected"):
        proto.parse(CONNECTED)
    assert proto.call_uuid == UUID


def test_binary_frames_are_the_callers_audio(proto: VonageProtocol) -> None:
    frame = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms at 16 kHz
    assert proto.parse(frame) == [AudioEvent(frame)]
    assert proto.parse(bytearray(b"\x01\x00")) == [AudioEvent(b"\x01\x00")]
    assert proto.parse(b"") == []


def test_half_a_sample_is_refused(proto: VonageProtocol) -> None:
    with pytest.raises(ProtocolError, match="not whole 16-bit samples"):
        proto.parse(b"\x01\x02\x03")


def test_audio_before_connected_is_bad_message(fresh: VonageProtocol) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(bytes(640))
    assert info.value.code == "bad_message"
    assert "before websocket:connected" in info.value.message


@pytest.mark.parametrize(
    "frame",
    [
        '{"event":"websocket:dtmf","digit":"5","duration":260}',
        '{"event":"websocket:notify","payload":{"mark":"m1"}}',
        '{"event":"websocket:cleared"}',
    ],
)
def test_events_before_connected_are_bad_message(fresh: VonageProtocol, frame: str) -> None:
    with pytest.raises(ProtocolError, match="before websocket:connected"):
        fresh.parse(frame)


def test_dtmf_from_the_docs(proto: VonageProtocol) -> None:
    assert proto.parse('{"event":"websocket:dtmf","digit":"5","duration":260}') == [DtmfEvent("5")]
    assert proto.parse('{"event":"websocket:dtmf","digit":"#"}') == [DtmfEvent("#")]


@pytest.mark.parametrize("digit", ["x", "55", "", 5, None])
def test_dtmf_with_a_bad_digit(proto: VonageProtocol, digit: object) -> None:
    with pytest.raises(ProtocolError, match="websocket:dtmf digit"):
        proto.parse(json.dumps({"event": "websocket:dtmf", "digit": digit}))


def test_notify_echo_is_the_mark(proto: VonageProtocol) -> None:
    assert proto.parse('{"event":"websocket:notify","payload":{"mark":"greeting_done"}}') == [
        MarkEvent("greeting_done")
    ]


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ('{"event":"websocket:notify"}', "needs a 'payload' object"),
        ('{"event":"websocket:notify","payload":"m1"}', "needs a 'payload' object"),
        ('{"event":"websocket:notify","payload":{}}', "payload.mark must be"),
        ('{"event":"websocket:notify","payload":{"mark":""}}', "payload.mark must be"),
    ],
)
def test_notify_without_our_mark(proto: VonageProtocol, frame: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        proto.parse(frame)


def test_cleared_and_other_informational_events_give_nothing(proto: VonageProtocol) -> None:
    assert proto.parse('{"event":"websocket:cleared"}') == []
    # The docs: "Various JSON text-based messages may be sent at any point in the call".
    assert proto.parse('{"event":"websocket:media:update","content-type":"x"}') == []


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ("not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "no 'event' field"),
        ('{"event":5}', "'event' must be a string"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_malformed_text(proto: VonageProtocol, frame: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem) as info:
        proto.parse(frame)
    assert info.value.code == "bad_message"


# --- outbound ------------------------------------------------------------------------


def test_format_before_connected_is_a_programming_error(fresh: VonageProtocol) -> None:
    for call in (
        lambda: fresh.format_audio(bytes(640)),
        lambda: fresh.format_audio_frames(bytes(640)),
        lambda: fresh.format_mark("m"),
        fresh.format_clear,
    ):
        with pytest.raises(RuntimeError, match="websocket:connected"):
            call()


def test_audio_goes_out_as_one_binary_frame(proto: VonageProtocol) -> None:
    frame = bytes(range(256)) * 2 + bytes(128)
    assert proto.format_audio(frame) == frame


def test_a_short_frame_is_padded_with_silence(proto: VonageProtocol) -> None:
    sent = proto.format_audio(b"\x01\x02" * 10)
    assert len(sent) == 640
    assert sent[:20] == b"\x01\x02" * 10 and not any(sent[20:])


def test_a_long_frame_is_refused_and_split_by_format_audio_frames(proto: VonageProtocol) -> None:
    with pytest.raises(ValueError, match="format_audio_frames"):
        proto.format_audio(bytes(641))
    frames = proto.format_audio_frames(b"\x07" * 1500)
    assert [len(f) for f in frames] == [640, 640, 640]
    assert b"".join(frames)[:1500] == b"\x07" * 1500 and not any(b"".join(frames)[1500:])
    assert proto.format_audio_frames(b"") == []


def test_frames_follow_the_connected_rate() -> None:
    codec = VonageProtocol()
    codec.parse('{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}')
    assert len(codec.format_audio(b"")) == 320


def test_mark_is_a_notify_and_its_echo_comes_back(proto: VonageProtocol) -> None:
    sent = proto.format_mark("response_done")
    assert json.loads(sent) == {"action": "notify", "payload": {"mark": "response_done"}}
    echo = json.dumps({"event": "websocket:notify", "payload": json.loads(sent)["payload"]})
    assert proto.parse(echo) == [MarkEvent("response_done")]


def test_a_mark_name_with_a_lone_surrogate_stays_valid_utf8(proto: VonageProtocol) -> None:
    sent = proto.format_mark("m\ud800")
    sent.encode("utf-8")
    assert json.loads(sent)["payload"]["mark"] == "m\ud800"


def test_clear(proto: VonageProtocol) -> None:
    assert json.loads(proto.format_clear()) == {"action": "clear"}


def test_no_transfer_hangup_or_error_messages(proto: VonageProtocol) -> None:
    assert proto.format_transfer({"phoneNumber": "+15550100"}) is None
    assert proto.format_hangup("done") is None
    assert proto.format_error("bad_message", "x") is None
