"""`PlivoGatewayWire` (Plivo's seat) round-tripped against `PlivoProtocol` (ours)."""

from __future__ import annotations

import json

import pytest

from realtime_voice.audio.format import MULAW_8K
from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.plivo import PlivoProtocol
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotMark,
    GatewayWire,
    Unexpected,
)
from realtime_voice.testing.gateway_wire_plivo import PlivoGatewayWire, format_extra_headers

CALL = "eba53b9e-8fbd-45c1-9444-696d2172fbc8"
TOKEN = "1765120000.AbC-dEf_gh12.q1w2e3r4"


def connected(params: dict[str, str] | None = None) -> tuple[PlivoGatewayWire, PlivoProtocol]:
    wire = PlivoGatewayWire(CALL)
    codec = PlivoProtocol()
    (opening,) = wire.opening(params if params is not None else {"token": TOKEN})
    (event,) = codec.parse(opening)
    assert isinstance(event, StartEvent)
    return wire, codec


def test_it_is_a_gateway_wire() -> None:
    wire: GatewayWire = PlivoGatewayWire(CALL)
    assert wire is not None


def test_the_opening_start_carries_the_call_and_custom_parameters() -> None:
    wire = PlivoGatewayWire(CALL, stream_id="s-1", account_id="MA1")
    (opening,) = wire.opening({"token": TOKEN, "persona": "bella"})
    assert json.loads(opening) == {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": CALL,
            "streamId": "s-1",
            "accountId": "MA1",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
        "extra_headers": f"token={TOKEN};persona=bella",
    }
    (event,) = PlivoProtocol().parse(opening)
    assert event == StartEvent(
        custom_parameters={"token": TOKEN, "persona": "bella"},
        call_id=CALL,
        stream_id="s-1",
        audio_format=MULAW_8K,
    )


def test_caller_messages_parse_into_the_neutral_events() -> None:
    wire, codec = connected()
    frame = bytes(range(160))
    assert codec.parse(wire.audio(frame, 20)) == [AudioEvent(frame)]
    assert codec.parse(wire.dtmf("#")) == [DtmfEvent("#")]
    assert codec.parse(wire.mark("greeting")) == [MarkEvent("greeting")]
    assert codec.parse(wire.cleared()) == []
    assert codec.parse(wire.stop()) == [StopEvent()]


def test_sequence_numbers_and_chunks_increase() -> None:
    wire, _ = connected()
    first, second = json.loads(wire.audio(b"\x7f", 0)), json.loads(wire.audio(b"\x7f", 20))
    assert (first["sequenceNumber"], second["sequenceNumber"]) == (2, 3)
    assert (first["media"]["chunk"], second["media"]["chunk"]) == (1, 2)
    assert second["media"]["timestamp"] == "20"


def test_server_messages_parse_into_bot_messages() -> None:
    wire, codec = connected()
    frame = bytes(range(160))
    assert wire.parse(codec.format_audio(frame)) == BotAudio(frame)
    assert wire.parse(codec.format_mark("response_done")) == BotMark("response_done")
    assert wire.parse(codec.format_clear()) == BotClear()


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"\x00", "only text"),
        ("nope", "not JSON"),
        ("[]", "JSON object"),
        ('{"event":"checkpoint","streamId":"other","name":"m"}', "streamId 'other'"),
        ('{"event":"media","streamId":"%s"}', "unknown event 'media'"),
        ('{"event":"checkpoint","streamId":"%s","name":""}', "non-empty name"),
        ('{"event":"playAudio"}', "media object"),
        (
            '{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":8000,'
            '"payload":""}}',
            "audio/x-mulaw at 8000",
        ),
        (
            '{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,'
            '"payload":"@@"}}',
            "not valid base64",
        ),
    ],
)
def test_anything_else_from_the_server_is_unexpected(message: str | bytes, problem: str) -> None:
    wire = PlivoGatewayWire(CALL, stream_id="s-1")
    if isinstance(message, str) and "%s" in message:
        message = message % "s-1"
    parsed = wire.parse(message)
    assert isinstance(parsed, Unexpected)
    assert problem in parsed.problem


@pytest.mark.parametrize("params", [{"greeting": "Hi, there"}, {"a": "b;c"}, {"": "x"}])
def test_parameters_plivo_could_not_carry_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="extra_headers"):
        format_extra_headers(params)


def test_a_bad_digit_is_refused() -> None:
    with pytest.raises(ValueError, match="DTMF"):
        PlivoGatewayWire(CALL).dtmf("x")
