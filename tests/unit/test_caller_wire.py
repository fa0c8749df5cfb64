"""The simulated gateway's wire messages, checked against the server's own codecs."""

from __future__ import annotations

import base64
import json

import pytest

from realtime_voice.protocols.base import (
    AudioEvent,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.ringcentral_bridge import RingCentralBridgeProtocol
from realtime_voice.protocols.twilio import TwilioMediaStreamsProtocol
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotError,
    BotHangup,
    BotMark,
    BotTransfer,
    RingCentralGatewayWire,
    TwilioGatewayWire,
    Unexpected,
)

FRAME = bytes(range(160))


def test_twilio_messages_are_what_the_server_codec_accepts() -> None:
    gateway = TwilioGatewayWire("CA" + "1" * 32)
    server = TwilioMediaStreamsProtocol()
    events = [
        e for m in gateway.opening({"token": "t0k", "persona": "host"}) for e in server.parse(m)
    ]
    assert isinstance(events[0], ConnectedEvent)
    start = events[1]
    assert isinstance(start, StartEvent)
    assert start.call_id == gateway.call_sid
    assert start.stream_id == gateway.stream_sid
    assert dict(start.custom_parameters) == {"token": "t0k", "persona": "host"}

    assert server.parse(gateway.audio(FRAME, 0)) == [AudioEvent(FRAME)]
    assert server.parse(gateway.dtmf("#")) == [DtmfEvent("#")]
    assert server.parse(gateway.mark("greeting_done")) == [MarkEvent("greeting_done")]
    assert server.parse(gateway.stop()) == [StopEvent()]


def test_twilio_counters_are_incrementing_strings() -> None:
    gateway = TwilioGatewayWire("CA1", stream_sid="MZ1", account_sid="AC1")
    start = json.loads(gateway.opening({})[1])
    assert start["sequenceNumber"] == "1"
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    first = json.loads(gateway.audio(FRAME, 0))
    second = json.loads(gateway.audio(FRAME, 20))
    assert (first["sequenceNumber"], second["sequenceNumber"]) == ("2", "3")
    assert (first["media"]["chunk"], second["media"]["chunk"]) == ("1", "2")
    assert (first["media"]["timestamp"], second["media"]["timestamp"]) == ("0", "20")
    assert first["media"]["track"] == "inbound"
    assert base64.b64decode(first["media"]["payload"]) == FRAME
    stop = json.loads(gateway.stop())
    assert stop["stop"] == {"accountSid": "AC1", "callSid": "CA1"}


def test_twilio_parses_what_the_server_codec_sends() -> None:
    gateway = TwilioGatewayWire("CA1")
    server = TwilioMediaStreamsProtocol()
    for message in gateway.opening({}):
        server.parse(message)
    assert gateway.parse(server.format_audio(FRAME)) == BotAudio(FRAME)
    assert gateway.parse(server.format_mark("response_1_done")) == BotMark("response_1_done")
    assert gateway.parse(server.format_clear()) == BotClear()


def test_twilio_flags_messages_for_another_stream() -> None:
    gateway = TwilioGatewayWire("CA1", stream_sid="MZ1")
    wrong = json.dumps({"event": "clear", "streamSid": "MZ2"})
    parsed = gateway.parse(wrong)
    assert isinstance(parsed, Unexpected)
    assert "MZ2" in parsed.problem
    assert isinstance(gateway.parse(b"\x00"), Unexpected)


def test_ringcentral_messages_are_what_the_server_codec_accepts() -> None:
    gateway = RingCentralGatewayWire()
    server = RingCentralBridgeProtocol()
    (start,) = server.parse(gateway.opening({"persona": "host"})[0])
    assert isinstance(start, StartEvent)
    assert dict(start.custom_parameters) == {"persona": "host"}
    assert server.parse(gateway.audio(FRAME, 0)) == [AudioEvent(FRAME)]
    assert server.parse(gateway.dtmf("5")) == [DtmfEvent("5")]
    assert server.parse(gateway.mark("greeting_done")) == [MarkEvent("greeting_done")]
    assert server.parse(gateway.stop()) == [StopEvent()]


def test_ringcentral_parses_what_the_server_codec_sends() -> None:
    gateway = RingCentralGatewayWire()
    server = RingCentralBridgeProtocol()
    assert gateway.parse(server.format_audio(FRAME)) == BotAudio(FRAME)
    assert gateway.parse(server.format_mark("greeting_done")) == BotMark("greeting_done")
    assert gateway.parse(server.format_clear()) == BotClear()
    transfer = server.format_transfer({"extensionNumber": "104"})
    assert transfer is not None
    assert gateway.parse(transfer) == BotTransfer({"extensionNumber": "104"})
    hangup = server.format_hangup("completed")
    assert hangup is not None
    assert gateway.parse(hangup) == BotHangup("completed")
    error = server.format_error("bad_message", "no type")
    assert error is not None
    parsed = gateway.parse(error)
    assert isinstance(parsed, BotError)
    assert (parsed.code, parsed.message) == ("bad_message", "no type")


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1]",
        '{"type": "dance"}',
        '{"type": "mark"}',
        '{"type": "transfer", "target": {"sip": "x"}}',
    ],
)
def test_ringcentral_flags_messages_outside_the_protocol(message: str) -> None:
    assert isinstance(RingCentralGatewayWire().parse(message), Unexpected)


def test_bad_dtmf_digit_is_refused() -> None:
    with pytest.raises(ValueError):
        RingCentralGatewayWire().dtmf("x")
    with pytest.raises(ValueError):
        TwilioGatewayWire("CA1").dtmf("55")
