"""Telnyx's side of the stream (`TelnyxGatewayWire`) against the server's `TelnyxProtocol`."""

from __future__ import annotations

import json

import pytest

from realtime_voice.audio.format import MULAW_8K
from realtime_voice.protocols.base import (
    AudioEvent,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.telnyx import TelnyxProtocol
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotMark,
    GatewayWire,
    Unexpected,
)
from realtime_voice.testing.gateway_wire_telnyx import TelnyxGatewayWire

CALL = "v3:abc123"


@pytest.fixture
def wire() -> TelnyxGatewayWire:
    return TelnyxGatewayWire(CALL, "stream-1", client_state="c3RhdGU=")


@pytest.fixture
def codec(wire: TelnyxGatewayWire) -> TelnyxProtocol:
    codec = TelnyxProtocol()
    for message in wire.opening({}):
        codec.parse(message)
    return codec


def test_it_is_a_gateway_wire() -> None:
    gateway: GatewayWire = TelnyxGatewayWire(CALL)
    assert gateway.opening({})


def test_opening_is_connected_then_start_for_the_call(wire: TelnyxGatewayWire) -> None:
    codec = TelnyxProtocol()
    connected, start = wire.opening({"persona": "Ava"})
    assert codec.parse(connected) == [ConnectedEvent()]
    assert codec.parse(start) == [
        StartEvent(
            custom_parameters={"client_state": "c3RhdGU=", "persona": "Ava"},
            call_id=CALL,
            stream_id="stream-1",
            audio_format=MULAW_8K,
        )
    ]
    assert (codec.from_number, codec.to_number) == ("+13125550123", "+13125550100")
    body = json.loads(start)
    assert body["sequence_number"] == "1" and body["stream_id"] == "stream-1"


def test_caller_audio_dtmf_marks_and_stop_reach_the_codec(
    wire: TelnyxGatewayWire, codec: TelnyxProtocol
) -> None:
    frames = [bytes([n]) * 160 for n in range(5)]
    events = [e for i, f in enumerate(frames) for e in codec.parse(wire.audio(f, 20 * i))]
    assert events == [AudioEvent(f) for f in frames]
    sent = json.loads(wire.audio(b"\x00" * 160, 100))
    assert (sent["media"]["chunk"], sent["media"]["timestamp"]) == ("6", "100")
    assert codec.parse(wire.dtmf("#")) == [DtmfEvent("#")]
    assert codec.parse(wire.mark("greeting")) == [MarkEvent("greeting")]
    assert codec.parse(wire.stop()) == [StopEvent()]
    with pytest.raises(ValueError, match="DTMF digit"):
        wire.dtmf("x")


def test_server_messages_parse_back(wire: TelnyxGatewayWire, codec: TelnyxProtocol) -> None:
    frame = bytes(range(160))
    assert wire.parse(codec.format_audio(frame)) == BotAudio(frame)
    assert wire.parse(codec.format_mark("m1")) == BotMark("m1")
    assert wire.parse(codec.format_clear()) == BotClear()


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"\x00", "only text frames"),
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"event":"media","media":{}}', "payload string"),
        ('{"event":"media","media":{"payload":"!!"}}', "not valid base64"),
        ('{"event":"mark","mark":{"name":""}}', "mark.name"),
        ('{"event":"transfer"}', "unknown event"),
        ('{"event":"clear","stream_id":"other"}', "stream_id"),
    ],
)
def test_anything_else_is_unexpected(
    wire: TelnyxGatewayWire, message: str | bytes, problem: str
) -> None:
    parsed = wire.parse(message)
    assert isinstance(parsed, Unexpected)
    assert problem in parsed.problem
