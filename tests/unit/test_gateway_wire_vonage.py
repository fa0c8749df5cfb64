"""`VonageGatewayWire` round-tripped against `VonageProtocol`: each side parses the other.

The wire's audio API is mu-law 8 kHz in 160-byte frames; on the socket it is L16 at the
stream's rate, so audio crosses G.711 and (at 16 kHz) the resampler both ways.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from realtime_voice.protocols.base import AudioEvent, DtmfEvent, MarkEvent, StartEvent
from realtime_voice.protocols.vonage import VonageProtocol
from realtime_voice.testing.gateway_wire import BotAudio, BotClear, BotMark, GatewayWire, Unexpected
from realtime_voice.testing.gateway_wire_vonage import VonageGatewayWire

UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"


def tone_frames(count: int, hz: float = 440.0) -> list[bytes]:
    """``count`` 20 ms mu-law 8 kHz frames of a sine tone."""
    t = np.arange(160 * count) / 8000.0
    pcm = (8000 * np.sin(2 * math.pi * hz * t)).astype(np.int16)
    data = pcm16_to_ulaw(pcm)
    return [data[i : i + 160] for i in range(0, len(data), 160)]


def connect(rate: int = 16000) -> tuple[VonageGatewayWire, VonageProtocol, StartEvent]:
    wire = VonageGatewayWire(UUID, sample_rate=rate)
    codec = VonageProtocol(sample_rate=rate)
    (opening,) = wire.opening({"token": "t.o.k", "from": "447700900000", "to": "442079460000"})
    (start,) = codec.parse(opening)
    assert isinstance(start, StartEvent)
    return wire, codec, start


def test_it_is_a_gateway_wire() -> None:
    wire: GatewayWire = VonageGatewayWire(UUID)
    assert wire is not None


def test_refuses_a_rate_vonage_does_not_carry() -> None:
    with pytest.raises(ValueError):
        VonageGatewayWire(UUID, sample_rate=24000)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_opening_is_websocket_connected_with_the_headers(rate: int) -> None:
    wire, codec, start = connect(rate)
    assert start.call_id == UUID
    assert start.custom_parameters["token"] == "t.o.k"
    assert start.audio_format == AudioFormat(AudioEncoding.PCM16, rate, 1)
    assert (codec.from_number, codec.to_number) == ("447700900000", "442079460000")
    (opening,) = wire.opening({})
    assert json.loads(opening)["content-type"] == f"audio/l16;rate={rate}"


@pytest.mark.parametrize("rate", [8000, 16000])
def test_caller_audio_is_one_l16_frame_per_mulaw_frame(rate: int) -> None:
    wire, codec, _ = connect(rate)
    for frame in tone_frames(5):
        message = wire.audio(frame, 0)
        assert isinstance(message, bytes) and len(message) == rate // 50 * 2
        (event,) = codec.parse(message)
        assert isinstance(event, AudioEvent) and event.payload == message


def test_at_8k_caller_audio_is_the_mulaw_decoded_exactly() -> None:
    wire, _, _ = connect(8000)
    (frame,) = tone_frames(1)
    assert wire.audio(frame, 0) == ulaw_to_pcm16(frame).astype("<i2").tobytes()


@pytest.mark.parametrize("rate", [8000, 16000])
def test_bot_audio_comes_back_as_mulaw_8k(rate: int) -> None:
    wire, codec, _ = connect(rate)
    frames = tone_frames(10)
    sent = []
    for frame in frames:
        # Bot audio in the call's format: what the caller's audio becomes on the socket.
        pcm = wire.audio(frame, 0)
        parsed = wire.parse(codec.format_audio(pcm))
        assert isinstance(parsed, BotAudio) and len(parsed.payload) == 160
        sent.append(parsed.payload)
    if rate == 8000:
        assert sent == frames  # no resampling: mu-law survives exactly
    else:
        # Through up- and downsampling the tone survives with its energy (filter delay
        # aside): compare the steady second half.
        got = ulaw_to_pcm16(b"".join(sent)).astype(np.float64)[800:]
        want = ulaw_to_pcm16(b"".join(frames)).astype(np.float64)[800:]
        assert abs(np.sqrt(np.mean(got**2)) / np.sqrt(np.mean(want**2)) - 1) < 0.1


def test_a_bot_frame_of_the_wrong_size_is_unexpected() -> None:
    wire, _, _ = connect(16000)
    assert isinstance(wire.parse(bytes(320)), Unexpected)


def test_dtmf() -> None:
    wire, codec, _ = connect()
    assert codec.parse(wire.dtmf("7")) == [DtmfEvent("7")]
    with pytest.raises(ValueError):
        wire.dtmf("x")


def test_mark_round_trip() -> None:
    wire, codec, _ = connect()
    sent = wire.parse(codec.format_mark("greeting_done"))
    assert sent == BotMark("greeting_done")
    assert codec.parse(wire.mark("greeting_done")) == [MarkEvent("greeting_done")]


def test_clear_cleared_and_stop() -> None:
    wire, codec, _ = connect()
    assert wire.parse(codec.format_clear()) == BotClear()
    assert codec.parse(wire.cleared()) == []
    assert codec.parse(wire.stop()) == []


@pytest.mark.parametrize(
    "message",
    ["not json", "[]", '{"action":"talk"}', '{"action":"notify","payload":{}}', '{"x":1}'],
)
def test_anything_else_from_the_server_is_unexpected(message: str) -> None:
    wire = VonageGatewayWire(UUID)
    assert isinstance(wire.parse(message), Unexpected)
