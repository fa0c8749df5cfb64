"""Exotel Voicebot applet codec: literal Exotel frames in both directions.

The frames follow developer.exotel.com/docs/agentstream/websocket-protocol, and the
shapes of the two Exotel systems in ../shared/seeds/ (000: lead context in
``customField`` on ``connected``; 002: 16 kHz PCM in 640-byte chunks, top-level
``custom_parameters``, ``greeting_done``/``response_done`` marks).
"""

from __future__ import annotations

import base64
import json
import random

import pytest

from realtime_voice.audio.format import AudioEncoding, AudioFormat, UnsupportedFormatError
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
from realtime_voice.protocols.exotel import CHUNK_BYTES, ExotelProtocol

PCM_8K = AudioFormat(AudioEncoding.PCM16, 8000, 1)
PCM_16K = AudioFormat(AudioEncoding.PCM16, 16000, 1)
SID = "MZ1c4e0b8a5f2d9e7a6b3c"

CONNECTED = '{"event":"connected"}'
START = json.dumps(
    {
        "event": "start",
        "sequence_number": "1",
        "stream_sid": SID,
        "start": {
            "stream_sid": SID,
            "call_sid": "CA7f3e",
            "account_sid": "ACexo",
            "from": "+919876543210",
            "to": "+918047491899",
            "custom_parameters": {"key1": "value1"},
            "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
        },
    }
)

# Seed 000: the lead-qualification engine's own test client, verbatim in shape.
LEAD = {
    "lead_id": 1,
    "lead_name": "Test User",
    "phone": "+919876543210",
    "property_type": "2BHK",
    "location": "Bangalore",
    "budget": 5000000,
}
SEED_000_CONNECTED = json.dumps(
    {"event": "connected", "call_sid": "test_call_123", "customField": json.dumps(LEAD)}
)
LEAD_PARAMS = {
    "lead_id": "1",
    "lead_name": "Test User",
    "phone": "+919876543210",
    "property_type": "2BHK",
    "location": "Bangalore",
    "budget": "5000000",
}

# Seed 002: the Go voicebot's start, with custom_parameters at the top level.
PERSONA = {
    "persona_name": "Priya",
    "language": "Hindi",
    "documents": "Plans start at 499 a month.",
    "greeting_text": "Namaste! Main Priya bol rahi hoon.",
}
SEED_002_START = json.dumps({"event": "start", "stream_sid": SID, "custom_parameters": PERSONA})


def media(payload: str, **extra: str) -> str:
    body = {"chunk": "2", "timestamp": "200", "payload": payload, **extra}
    return json.dumps({"event": "media", "sequence_number": "3", "stream_sid": SID, "media": body})


@pytest.fixture
def fresh() -> ExotelProtocol:
    return ExotelProtocol()


@pytest.fixture
def proto() -> ExotelProtocol:
    codec = ExotelProtocol()
    codec.parse(CONNECTED)
    codec.parse(START)
    return codec


def test_satisfies_the_media_protocol_interface() -> None:
    codec: MediaProtocol = ExotelProtocol()
    assert codec.name == "exotel"
    assert codec.audio_format == PCM_8K
    assert ExotelProtocol(sample_rate=16000).audio_format == PCM_16K


def test_constructor_refuses_a_rate_we_do_not_carry() -> None:
    with pytest.raises(UnsupportedFormatError):
        ExotelProtocol(sample_rate=24000)


# --- inbound -------------------------------------------------------------------------


def test_connected(fresh: ExotelProtocol) -> None:
    assert fresh.parse(CONNECTED) == [ConnectedEvent()]


def test_start_gives_parameters_call_stream_and_format(fresh: ExotelProtocol) -> None:
    assert fresh.parse(START) == [
        StartEvent(
            custom_parameters={"key1": "value1"},
            call_id="CA7f3e",
            stream_id=SID,
            audio_format=PCM_8K,
        )
    ]
    assert fresh.stream_sid == SID
    assert fresh.call_sid == "CA7f3e"
    assert fresh.account_sid == "ACexo"
    assert fresh.from_number == "+919876543210"
    assert fresh.to_number == "+918047491899"
    assert fresh.audio_format == PCM_8K


def test_start_minimal_takes_stream_sid_from_start_object(fresh: ExotelProtocol) -> None:
    (event,) = fresh.parse('{"event":"start","start":{"stream_sid":"MZ1"}}')
    assert event == StartEvent(stream_id="MZ1", audio_format=PCM_8K)


@pytest.mark.parametrize("rate", ["16000", 16000])
def test_start_media_format_16k(fresh: ExotelProtocol, rate: object) -> None:
    frame = json.dumps(
        {
            "event": "start",
            "stream_sid": "MZ1",
            "start": {"media_format": {"encoding": "audio/x-raw", "sample_rate": rate}},
        }
    )
    (event,) = fresh.parse(frame)
    assert isinstance(event, StartEvent)
    assert event.audio_format == PCM_16K
    assert fresh.audio_format == PCM_16K


def test_start_media_format_wins_over_the_url_rate() -> None:
    codec = ExotelProtocol(sample_rate=16000)
    frame = (
        '{"event":"start","stream_sid":"MZ1","start":'
        '{"media_format":{"encoding":"audio/x-raw","sample_rate":"8000","bit_rate":"16"}}}'
    )
    assert codec.parse(frame)[0] == StartEvent(stream_id="MZ1", audio_format=PCM_8K)
    assert codec.audio_format == PCM_8K


def test_start_media_format_without_rate_keeps_the_url_rate() -> None:
    codec = ExotelProtocol(sample_rate=16000)
    frame = '{"event":"start","stream_sid":"MZ1","start":{"media_format":{"encoding":"slin"}}}'
    assert codec.parse(frame)[0] == StartEvent(stream_id="MZ1", audio_format=PCM_16K)


@pytest.mark.parametrize(
    "media_format",
    [
        {"encoding": "audio/x-mulaw", "sample_rate": "8000", "bit_rate": "16"},
        {"encoding": "audio/x-raw", "sample_rate": "24000", "bit_rate": "16"},
        {"encoding": "audio/x-raw", "sample_rate": "44100"},
        {"encoding": "audio/x-raw", "sample_rate": "fast"},
        {"encoding": "audio/x-raw", "sample_rate": True},
        {"encoding": "audio/x-raw", "sample_rate": 8000.5},
        {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "8"},
        {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": True},
        {"encoding": 7, "sample_rate": "8000"},
    ],
)
def test_start_with_other_media_format_is_unsupported(
    fresh: ExotelProtocol, media_format: dict[str, object]
) -> None:
    frame = json.dumps(
        {"event": "start", "stream_sid": "MZ1", "start": {"media_format": media_format}}
    )
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "unsupported_format"
    assert "start.media_format" in info.value.message
    assert fresh.stream_sid is None  # a rejected start does not start the stream
    assert fresh.audio_format == PCM_8K


def test_media_is_base64_decoded(proto: ExotelProtocol) -> None:
    audio = bytes(range(256)) * 12 + bytes(128)  # 3,200 bytes: 100 ms at 8 kHz
    assert proto.parse(media(base64.b64encode(audio).decode())) == [AudioEvent(audio)]
    assert proto.parse(media("fn5+fn5+")) == [AudioEvent(b"~~~~~~")]


def test_media_without_chunk_or_stream_sid(proto: ExotelProtocol) -> None:
    assert proto.parse('{"event":"media","media":{"payload":"/w=="}}') == [AudioEvent(b"\xff")]


def test_empty_payload_gives_no_event(proto: ExotelProtocol) -> None:
    assert proto.parse(media("")) == []


def test_dtmf(proto: ExotelProtocol) -> None:
    frame = json.dumps(
        {
            "event": "dtmf",
            "sequence_number": "7",
            "stream_sid": SID,
            "dtmf": {"digit": "5", "duration": "100"},
        }
    )
    assert proto.parse(frame) == [DtmfEvent("5")]


def test_mark(proto: ExotelProtocol) -> None:
    frame = json.dumps(
        {"event": "mark", "sequence_number": "15", "stream_sid": SID, "mark": {"name": "m1"}}
    )
    assert proto.parse(frame) == [MarkEvent("m1")]


def test_stop(proto: ExotelProtocol) -> None:
    frame = json.dumps(
        {
            "event": "stop",
            "sequence_number": "40",
            "stream_sid": SID,
            "stop": {"call_sid": "CA7f3e", "account_sid": "ACexo", "reason": "callended"},
        }
    )
    assert proto.parse(frame) == [StopEvent()]
    assert proto.parse('{"event":"stop"}') == [StopEvent()]


def test_inbound_clear_is_accepted_and_gives_no_event(proto: ExotelProtocol) -> None:
    # Seed 002 lists Exotel -> {"event":"clear","stream_sid":...}; the docs do not.
    assert proto.parse(json.dumps({"event": "clear", "stream_sid": SID})) == []


def test_pipecat_spelling_of_the_stream_sid_is_accepted(proto: ExotelProtocol) -> None:
    frame = json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "/w=="}})
    assert proto.parse(frame) == [AudioEvent(b"\xff")]


@pytest.mark.parametrize(
    "frame",
    [
        media("fn5+"),
        '{"event":"dtmf","dtmf":{"digit":"1"}}',
        '{"event":"mark","mark":{"name":"x"}}',
        '{"event":"stop"}',
        '{"event":"clear"}',
    ],
)
def test_events_before_start_are_rejected(fresh: ExotelProtocol, frame: str) -> None:
    fresh.parse(CONNECTED)
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "bad_message"
    assert "before start" in info.value.message


# --- seed 000: lead context in customField ----------------------------------------------


def test_seed_000_connected_lead_context_reaches_the_start(fresh: ExotelProtocol) -> None:
    assert fresh.parse(SEED_000_CONNECTED) == [ConnectedEvent()]
    (event,) = fresh.parse('{"event":"start","stream_sid":"MZ1","start":{}}')
    assert event == StartEvent(
        custom_parameters=LEAD_PARAMS,
        call_id="test_call_123",
        stream_id="MZ1",
        audio_format=PCM_8K,
    )
    assert fresh.call_sid == "test_call_123"


def test_seed_000_lead_context_with_exotels_own_start(fresh: ExotelProtocol) -> None:
    fresh.parse(SEED_000_CONNECTED)
    (event,) = fresh.parse(START)
    assert isinstance(event, StartEvent)
    # The start's own call_sid and parameters win; the lead context stays.
    assert event.call_id == "CA7f3e"
    assert dict(event.custom_parameters) == {**LEAD_PARAMS, "key1": "value1"}


def test_seed_000_customfield_spelled_as_in_its_exotel_flow(fresh: ExotelProtocol) -> None:
    lead = {"lead_id": 123, "lead_name": "Rajesh Kumar", "property_type": "3BHK"}
    frame = json.dumps(
        {"event": "start", "stream_sid": "MZ1", "start": {"CustomField": json.dumps(lead)}}
    )
    (event,) = fresh.parse(frame)
    assert isinstance(event, StartEvent)
    assert dict(event.custom_parameters) == {
        "lead_id": "123",
        "lead_name": "Rajesh Kumar",
        "property_type": "3BHK",
    }


def test_customfield_as_an_object_or_as_plain_text(fresh: ExotelProtocol) -> None:
    fresh.parse('{"event":"connected","customField":{"lead_name":"Meera","budget":7.5}}')
    (event,) = fresh.parse('{"event":"start","stream_sid":"MZ1","customField":"campaign-42"}')
    assert isinstance(event, StartEvent)
    assert dict(event.custom_parameters) == {
        "lead_name": "Meera",
        "budget": "7.5",
        "customField": "campaign-42",
    }


@pytest.mark.parametrize("text", ["not json {", "[1, 2]", "17", '"quoted"', "[" * 5000])
def test_customfield_text_that_is_not_a_json_object_is_kept_whole(
    fresh: ExotelProtocol, text: str
) -> None:
    fresh.parse(json.dumps({"event": "connected", "customField": text}))
    (event,) = fresh.parse('{"event":"start","stream_sid":"MZ1"}')
    assert isinstance(event, StartEvent)
    assert dict(event.custom_parameters) == {"customField": text}


# --- seed 002: 16 kHz persona voicebot ---------------------------------------------------


@pytest.fixture
def voicebot() -> ExotelProtocol:
    """The codec as the server builds it for ``/was?sample-rate=16000``."""
    return ExotelProtocol(sample_rate=16000)


def test_seed_002_start_with_top_level_custom_parameters(voicebot: ExotelProtocol) -> None:
    assert voicebot.parse(SEED_002_START) == [
        StartEvent(custom_parameters=PERSONA, stream_id=SID, audio_format=PCM_16K)
    ]


def test_seed_002_640_byte_chunks_out_and_in(voicebot: ExotelProtocol) -> None:
    voicebot.parse(SEED_002_START)
    assert voicebot.audio_format.frame_bytes == 640  # one 20 ms frame at 16 kHz
    rng = random.Random(2)
    speech = rng.randbytes(640 * 25)  # half a second of 16 kHz PCM16
    chunks = [speech[i : i + 640] for i in range(0, len(speech), 640)]
    wire = [voicebot.format_audio(chunk) for chunk in chunks]
    for chunk, message in zip(chunks, wire, strict=True):
        sent = json.loads(message)
        assert sent == {
            "event": "media",
            "stream_sid": SID,
            "media": {"payload": base64.b64encode(chunk).decode()},
        }
        assert len(base64.b64decode(sent["media"]["payload"])) == 640
    # Seed 002's caller audio arrives the same way (base64 PCM16 in media.payload).
    assert [e for m in wire for e in voicebot.parse(m)] == [AudioEvent(c) for c in chunks]


def test_seed_002_marks_round_trip(voicebot: ExotelProtocol) -> None:
    voicebot.parse(SEED_002_START)
    for name in ("greeting_done", "response_done"):
        sent = json.loads(voicebot.format_mark(name))
        assert sent == {"event": "mark", "stream_sid": SID, "mark": {"name": name}}
        echoed = {**sent, "sequence_number": "9"}
        assert voicebot.parse(json.dumps(echoed)) == [MarkEvent(name)]


# --- malformed frames name the field --------------------------------------------------

BAD_AFTER_START = [
    (b"\x00\x01", "only text frames"),
    (b"", "only text frames"),
    ("not json", "not valid JSON"),
    ("[" * 100_000, "nested too deeply"),
    ("1" * 5000, "not valid JSON"),
    ("null", "got NoneType"),
    ("[]", "got list"),
    ('"x"', "got str"),
    ("{}", "no 'event' field"),
    ('{"event":5}', "unknown event 5"),
    ('{"event":"playAudio"}', "unknown event 'playAudio'"),
    ('{"type":"stop"}', "no 'event' field"),
    ('{"event":"media"}', "needs a 'media' object"),
    ('{"event":"media","media":"fn5+"}', "needs a 'media' object"),
    ('{"event":"media","media":{}}', "media.payload must be a base64 string"),
    ('{"event":"media","media":{"payload":5}}', "media.payload must be a base64 string"),
    ('{"event":"media","media":{"payload":"fn5"}}', "media.payload is not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+!!!!"}}', "media.payload is not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+\\u00e9"}}', "media.payload is not valid base64"),
    ('{"event":"media","media":{"payload":"fn5+\\ud800"}}', "media.payload is not valid base64"),
    ('{"event":"media","stream_sid":"MZother","media":{"payload":"fn5+"}}', "stream_sid"),
    ('{"event":"dtmf"}', "needs a 'dtmf' object"),
    ('{"event":"dtmf","dtmf":{"digit":"x"}}', "dtmf.digit must be one of"),
    ('{"event":"dtmf","dtmf":{"digit":5}}', "dtmf.digit must be one of"),
    ('{"event":"dtmf","dtmf":{"duration":"100"}}', "dtmf.digit must be one of"),
    ('{"event":"mark","mark":{}}', "mark.name must be a non-empty string"),
    ('{"event":"mark","mark":{"name":""}}', "mark.name must be a non-empty string"),
    ('{"event":"mark","mark":[]}', "needs a 'mark' object"),
    ('{"event":"stop","stream_sid":"MZother"}', "not this stream's"),
    ('{"event":"clear","stream_sid":"MZother"}', "not this stream's"),
    (START, "duplicate start"),
]


@pytest.mark.parametrize(("frame", "expected"), BAD_AFTER_START)
def test_bad_frames_raise_protocol_error_naming_the_problem(
    proto: ExotelProtocol, frame: str | bytes, expected: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.parse(frame)
    assert info.value.code == "bad_message"
    assert expected in info.value.message
    # The stream is unaffected: the next good frame still parses.
    assert proto.stream_sid == SID
    assert proto.parse(media("/w==")) == [AudioEvent(b"\xff")]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"event":"start"}', "non-empty stream_sid"),
        ('{"event":"start","start":"MZ1"}', "needs a 'start' object"),
        ('{"event":"start","start":{}}', "non-empty stream_sid"),
        ('{"event":"start","stream_sid":"","start":{}}', "non-empty stream_sid"),
        ('{"event":"start","stream_sid":5,"start":{}}', "non-empty stream_sid"),
        ('{"event":"start","stream_sid":"MZ1","start":{"call_sid":5}}', "start.call_sid"),
        ('{"event":"start","stream_sid":"MZ1","call_sid":[]}', "start.call_sid"),
        ('{"event":"start","stream_sid":"MZ1","start":{"account_sid":1}}', "start.account_sid"),
        ('{"event":"start","stream_sid":"MZ1","start":{"from":123}}', "start.from"),
        ('{"event":"start","stream_sid":"MZ1","start":{"to":false}}', "start.to"),
        (
            '{"event":"start","stream_sid":"MZ1","start":{"custom_parameters":[]}}',
            "start.custom_parameters must be an object",
        ),
        (
            '{"event":"start","stream_sid":"MZ1","custom_parameters":"a=b"}',
            "start.custom_parameters must be an object",
        ),
        (
            '{"event":"start","stream_sid":"MZ1","start":{"media_format":"pcm"}}',
            "start.media_format must be an object",
        ),
        ('{"event":"start","stream_sid":"MZ1","customField":5}', "start.customField"),
        ('{"event":"start","stream_sid":"MZ1","start":{"CustomField":[]}}', "CustomField"),
    ],
)
def test_bad_start_frames(fresh: ExotelProtocol, frame: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "bad_message"
    assert expected in info.value.message
    assert fresh.stream_sid is None
    assert fresh.call_sid is None


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"event":"connected","call_sid":5}', "connected.call_sid"),
        ('{"event":"connected","customField":7}', "connected.customField"),
    ],
)
def test_bad_connected_frames(fresh: ExotelProtocol, frame: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        fresh.parse(frame)
    assert info.value.code == "bad_message"
    assert expected in info.value.message


# --- outbound ------------------------------------------------------------------------


def test_format_audio_exact_wire_json(proto: ExotelProtocol) -> None:
    frame = b"~" * 320  # one 20 ms frame at 8 kHz: exactly one 320-byte unit
    assert proto.format_audio(frame) == (
        '{"event":"media","stream_sid":"'
        + SID
        + '","media":{"payload":"'
        + base64.b64encode(frame).decode()
        + '"}}'
    )


@pytest.mark.parametrize("size", [320, 640, 3200, 320 * 313])
def test_whole_units_go_out_unchanged(proto: ExotelProtocol, size: int) -> None:
    frame = random.Random(size).randbytes(size)
    expected = json.dumps(
        {
            "event": "media",
            "stream_sid": SID,
            "media": {"payload": base64.b64encode(frame).decode()},
        },
        separators=(",", ":"),
    )
    assert proto.format_audio(frame) == expected


@pytest.mark.parametrize(("size", "sent"), [(1, 320), (2, 320), (319, 320), (321, 640), (650, 960)])
def test_short_frames_are_padded_with_silence_to_a_multiple_of_320(
    proto: ExotelProtocol, size: int, sent: int
) -> None:
    frame = b"\x11" * size
    payload = base64.b64decode(json.loads(proto.format_audio(frame))["media"]["payload"])
    assert len(payload) == sent
    assert len(payload) % CHUNK_BYTES == 0
    assert payload == frame + bytes(sent - size)


def test_empty_frame_sends_an_empty_payload(proto: ExotelProtocol) -> None:
    assert json.loads(proto.format_audio(b""))["media"] == {"payload": ""}


def test_format_audio_escapes_an_odd_stream_sid(fresh: ExotelProtocol) -> None:
    sid = 'MZ"\\é\ud800'
    fresh.parse(json.dumps({"event": "start", "stream_sid": sid}))
    wire = fresh.format_audio(b"\x01\x02" * 160)
    wire.encode("utf-8")
    assert json.loads(wire)["stream_sid"] == sid
    assert json.loads(fresh.format_clear()) == {"event": "clear", "stream_sid": sid}
    assert json.loads(fresh.format_mark("m"))["stream_sid"] == sid


def test_format_mark_and_clear_exact(proto: ExotelProtocol) -> None:
    assert proto.format_mark("utterance-7-end") == (
        '{"event":"mark","stream_sid":"' + SID + '","mark":{"name":"utterance-7-end"}}'
    )
    assert proto.format_clear() == '{"event":"clear","stream_sid":"' + SID + '"}'
    assert json.loads(proto.format_mark('q"uote'))["mark"] == {"name": 'q"uote'}


def test_outbound_messages_parse_back(proto: ExotelProtocol) -> None:
    frame = bytes(range(256)) + bytes(64)
    assert proto.parse(proto.format_audio(frame)) == [AudioEvent(frame)]
    assert proto.parse(proto.format_mark("m")) == [MarkEvent("m")]
    assert proto.parse(proto.format_clear()) == []


def test_no_transfer_hangup_or_error_messages(proto: ExotelProtocol) -> None:
    assert proto.format_transfer({"phoneNumber": "+919800000000"}) is None
    assert proto.format_hangup("completed") is None
    assert proto.format_error("bad_message", "nope") is None


def test_outbound_before_start_is_a_programming_error(fresh: ExotelProtocol) -> None:
    with pytest.raises(RuntimeError, match="stream_sid"):
        fresh.format_audio(b"\x00" * 320)
    with pytest.raises(RuntimeError, match="stream_sid"):
        fresh.format_mark("m")
    with pytest.raises(RuntimeError, match="stream_sid"):
        fresh.format_clear()
    fresh.parse(SEED_000_CONNECTED)
    with pytest.raises(RuntimeError):
        fresh.format_audio(b"\x00")
