"""The simulated caller over real sockets, against a scripted peer written here.

The peer is not the product server (its end-to-end tests live in tests/e2e): it plays a
fixed script so each test can check one gateway behaviour exactly — continuous 20 ms
audio, marks echoed only once their audio has played, ``clear`` cutting playback, and
a clean ending in every case.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from realtime_voice.audio.g711 import pcm16_to_ulaw
from realtime_voice.protocols.twilio import TwilioMediaStreamsProtocol
from realtime_voice.testing.caller import (
    CallerLine,
    CallOptions,
    CallSetupError,
    SimulatedCaller,
)

FRAME = 160
BOT_BYTE = 0x10  # a loud mu-law code, easy to tell from silence (0xFF)


def _tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return pcm16_to_ulaw((6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16))


def _bot_audio(frames: int) -> list[bytes]:
    return [bytes([BOT_BYTE]) * FRAME for _ in range(frames)]


def _is_speech(frame: bytes) -> bool:
    return any(b not in (0xFF, 0x7F) for b in frame)


@dataclass
class Peer:
    """What the scripted peer saw."""

    inbound: list[dict[str, Any]] = field(default_factory=list)
    webhook_bodies: list[dict[str, Any]] = field(default_factory=list)
    webhook_headers: list[dict[str, str]] = field(default_factory=list)
    audio_frames: list[bytes] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    http_port: int = 0


Handler = Callable[[ServerConnection, Peer], Awaitable[None]]


@asynccontextmanager
async def scripted_peer(handler: Handler, status: int = 200) -> AsyncIterator[Peer]:
    peer = Peer()

    async def inbound(request: web.Request) -> web.Response:
        body = await request.json()
        peer.webhook_bodies.append(body)
        peer.webhook_headers.append(dict(request.headers))
        if status != 200:
            return web.json_response({"error": "nope"}, status=status)
        call_id = body["body"]["id"]
        url = (
            f"ws://127.0.0.1:{peer.port}/api/voice/realtime/ws/call"
            f"?call_id={call_id}&token=tok-{call_id}"
        )
        return web.json_response(
            {
                "action": "answer",
                "media": {
                    "type": "websocket",
                    "url": url,
                    "format": {"encoding": "mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    async def media(ws: ServerConnection) -> None:
        await handler(ws, peer)

    app = web.Application()
    app.router.add_post("/api/voice/inbound", inbound)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    peer.http_port = runner.addresses[0][1]
    async with serve(media, "127.0.0.1", 0, compression=None) as server:
        peer.port = next(iter(server.sockets)).getsockname()[1]
        try:
            yield peer
        finally:
            await runner.cleanup()


async def _recv(ws: ServerConnection, peer: Peer) -> str | bytes:
    message = await ws.recv()
    if isinstance(message, bytes):
        peer.audio_frames.append(message)
    else:
        peer.texts.append(json.loads(message))
    return message


async def _until_text(ws: ServerConnection, peer: Peer, kind: str) -> dict[str, Any]:
    while True:
        message = await _recv(ws, peer)
        if isinstance(message, str) and json.loads(message).get("type") == kind:
            result: dict[str, Any] = json.loads(message)
            return result


async def _until_caller_stops_speaking(ws: ServerConnection, peer: Peer) -> None:
    heard = False
    quiet = 0
    while True:
        message = await _recv(ws, peer)
        if isinstance(message, bytes):
            if _is_speech(message):
                heard, quiet = True, 0
            elif heard:
                quiet += 1
                if quiet == 5:
                    return


def _options(peer: Peer, **extra: Any) -> CallOptions:
    defaults: dict[str, Any] = {
        "http_url": f"http://127.0.0.1:{peer.http_port}",
        "transcribe_bot": False,
        "max_call_s": 20.0,
        "end_after_last_line_s": 0.3,
    }
    defaults.update(extra)
    return CallOptions(**defaults)


async def test_full_turn_marks_latency_hangup_and_recording(tmp_path: Path) -> None:
    async def bot(ws: ServerConnection, peer: Peer) -> None:
        start = await _until_text(ws, peer, "start")
        assert start["customParameters"] == {"persona": "host"}
        for frame in _bot_audio(15):  # 0.3 s greeting sent ahead, as a server's lead
            await ws.send(frame)
        await ws.send(json.dumps({"type": "mark", "name": "greeting_done"}))
        await _until_text(ws, peer, "mark")
        await _until_caller_stops_speaking(ws, peer)
        for frame in _bot_audio(10):
            await ws.send(frame)
        await ws.send(json.dumps({"type": "mark", "name": "response_1_done"}))
        await _until_text(ws, peer, "mark")
        await ws.send(json.dumps({"type": "hangup", "reason": "completed"}))
        await _until_text(ws, peer, "stop")
        await ws.wait_closed()

    record = tmp_path / "call.wav"
    async with scripted_peer(bot) as peer:
        options = _options(
            peer,
            custom_parameters={"persona": "host"},
            record_path=str(record),
            verification_token="secret",
        )
        report = await SimulatedCaller(options).run(
            [CallerLine(text="hello", audio=_tone(0.4), pause_before_s=0.2)]
        )

    body = peer.webhook_bodies[0]
    assert body["event"] == "call.inbound"
    assert body["body"]["id"] == report.call_id
    assert body["body"]["from"] == {"phoneNumber": options.from_number}
    assert peer.webhook_headers[0]["Verification-Token"] == "secret"

    # A phone line never goes quiet on the wire: every frame is 20 ms of mu-law.
    assert peer.audio_frames and all(len(f) == FRAME for f in peer.audio_frames)
    assert [t["type"] for t in peer.texts] == ["start", "mark", "mark", "stop"]
    assert [t.get("name") for t in peer.texts[1:3]] == ["greeting_done", "response_1_done"]

    greeting_mark, reply_mark = report.marks_received
    assert greeting_mark.echoed_at is not None and reply_mark.echoed_at is not None
    # Echoed when playback reached it: after the 0.3 s it carried had played.
    assert greeting_mark.echoed_at - greeting_mark.received_at >= 0.29
    assert not greeting_mark.cleared

    (line,) = report.caller_lines
    assert line.start is not None and line.end is not None
    # It waited for the greeting, then paused 0.2 s. A line's start is the start of the
    # first 20 ms frame that carries it, and the caller sends each frame at the end of
    # its period: a line queued just after a frame boundary starts on that frame, up to
    # one frame before the pause ran out (a 0.1 ms miss failed here about 1 run in 20).
    assert line.start >= greeting_mark.echoed_at + 0.2 - 0.020
    assert line.end - line.start == pytest.approx(0.4, abs=0.03)
    assert line.turn_latency_s is not None and line.turn_latency_s > 0

    greeting, reply = report.bot_utterances
    assert (greeting.mark, reply.mark) == ("greeting_done", "response_1_done")
    assert len(greeting.audio) == 15 * FRAME and len(reply.audio) == 10 * FRAME
    assert not greeting.interrupted and not reply.interrupted

    assert report.hangup_reason == "completed"
    assert report.ended_by == "server_hangup"
    assert report.close_code == 1000
    assert "CALL   hangup (completed)" in report.format_transcript()

    with wave.open(str(record), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)
    caller_side = samples[round(line.start * 8000) : round(line.end * 8000), 0]
    bot_side = samples[round(greeting.start * 8000) : round(greeting.end * 8000), 1]
    assert np.abs(caller_side).mean() > 1000
    assert np.abs(bot_side).mean() > 1000
    # Between the greeting and the reply the bot's channel is silent.
    assert not samples[round(greeting.end * 8000) + 8 : round(reply.start * 8000) - 8, 1].any()


async def test_barge_in_clear_cuts_playback_and_echoes_pending_marks() -> None:
    async def bot(ws: ServerConnection, peer: Peer) -> None:
        await _until_text(ws, peer, "start")
        for frame in _bot_audio(100):  # 2 s of speech, all queued at the gateway
            await ws.send(frame)
        await ws.send(json.dumps({"type": "mark", "name": "greeting_done"}))
        while not (peer.audio_frames and _is_speech(peer.audio_frames[-1])):
            await _recv(ws, peer)
        await ws.send(json.dumps({"type": "clear"}))
        await _until_text(ws, peer, "mark")
        await _until_caller_stops_speaking(ws, peer)
        for frame in _bot_audio(5):
            await ws.send(frame)
        await ws.send(json.dumps({"type": "mark", "name": "response_1_done"}))
        await _until_text(ws, peer, "mark")
        await ws.send(json.dumps({"type": "hangup", "reason": "completed"}))
        await _until_text(ws, peer, "stop")

    async with scripted_peer(bot) as peer:
        report = await SimulatedCaller(_options(peer)).run(
            [CallerLine(audio=_tone(0.5), barge_in_after_s=0.3)]
        )

    greeting_mark = report.marks_received[0]
    assert greeting_mark.cleared
    (line,) = report.caller_lines
    assert line.barge_in and line.start is not None
    assert report.barge_in_latencies_s == [report.clears[0] - line.start]
    assert report.barge_in_latencies_s[0] is not None and report.barge_in_latencies_s[0] > 0
    cut = report.bot_utterances[0]
    assert cut.interrupted
    # Only what played before the clear was heard, and it is not the whole 2 s.
    assert cut.end == pytest.approx(report.clears[0], abs=1 / 8000)  # cut on a sample
    assert 0 < len(cut.audio) < 100 * FRAME
    assert line.turn_latency_s is not None
    assert report.bot_utterances[-1].mark == "response_1_done"
    assert "[interrupted]" in report.format_transcript()


async def test_twilio_stream_carries_token_callsid_and_ends_on_server_close() -> None:
    seen: dict[str, Any] = {}

    async def bot(ws: ServerConnection, peer: Peer) -> None:
        codec = TwilioMediaStreamsProtocol()
        events = [e for _ in range(2) for e in codec.parse(await ws.recv())]
        seen["start"] = events[1]
        seen["path"] = ws.request.path if ws.request else ""
        for frame in _bot_audio(5):
            await ws.send(codec.format_audio(frame))
        await ws.send(codec.format_mark("greeting_done"))
        while True:
            message = await ws.recv()
            assert isinstance(message, str)
            payload = json.loads(message)
            if payload["event"] == "mark":
                seen["mark"] = payload
                break
        # Twilio has no hang-up message: the server ends the stream by closing.
        await ws.close(1000, "bye")

    async with scripted_peer(bot) as peer:
        report = await SimulatedCaller(_options(peer, protocol="twilio")).run([])

    start = seen["start"]
    assert report.call_id.startswith("CA")
    assert start.call_id == report.call_id
    assert start.custom_parameters["token"] == f"tok-{report.call_id}"
    assert seen["path"] == "/api/voice/twilio/ws"
    assert seen["mark"]["mark"] == {"name": "greeting_done"}
    assert seen["mark"]["streamSid"] == start.stream_id
    assert report.ended_by == "server_closed"
    assert (report.close_code, report.close_reason) == (1000, "bye")
    assert len(report.bot_utterances) == 1


async def test_dtmf_line_and_caller_hangup_after_silence() -> None:
    async def bot(ws: ServerConnection, peer: Peer) -> None:
        await _until_text(ws, peer, "start")
        for frame in _bot_audio(5):
            await ws.send(frame)
        await ws.send(json.dumps({"type": "mark", "name": "greeting_done"}))
        await _until_text(ws, peer, "dtmf")
        for frame in _bot_audio(5):
            await ws.send(frame)
        await ws.send(json.dumps({"type": "mark", "name": "response_1_done"}))
        await _until_text(ws, peer, "stop")

    async with scripted_peer(bot) as peer:
        report = await SimulatedCaller(_options(peer)).run(
            [CallerLine(dtmf="5", pause_before_s=0.1)]
        )
    assert {"type": "dtmf", "digit": "5"} in peer.texts
    assert peer.texts[-1] == {"type": "stop"}
    assert report.ended_by == "caller_hangup"
    assert report.close_code == 1000
    (line,) = report.caller_lines
    assert line.kind == "dtmf" and line.turn_latency_s is not None
    assert "CALLER DTMF 5" in report.format_transcript()


async def test_max_call_duration_hangs_up_a_silent_server() -> None:
    async def bot(ws: ServerConnection, peer: Peer) -> None:
        await _until_text(ws, peer, "start")
        await _until_text(ws, peer, "stop")

    async with scripted_peer(bot) as peer:
        report = await SimulatedCaller(_options(peer, max_call_s=0.3)).run([])
    assert report.ended_by == "max_duration"
    assert peer.texts[-1] == {"type": "stop"}
    assert report.bot_utterances == []


async def test_error_frames_are_recorded_and_the_call_goes_on() -> None:
    async def bot(ws: ServerConnection, peer: Peer) -> None:
        await _until_text(ws, peer, "start")
        await ws.send(json.dumps({"type": "error", "code": "bad_message", "message": "x"}))
        await ws.send(json.dumps({"type": "dance"}))
        await ws.close(1008, "token reused")

    async with scripted_peer(bot) as peer:
        report = await SimulatedCaller(_options(peer)).run([CallerLine(audio=_tone(0.2))])
    assert report.errors == [{"type": "error", "code": "bad_message", "message": "x"}]
    assert len(report.unexpected) == 1 and "dance" in report.unexpected[0]
    assert (report.close_code, report.close_reason) == (1008, "token reused")
    assert report.ended_by == "server_closed"
    assert report.caller_lines[0].start is None  # the call ended before the line


async def test_webhook_refusal_names_the_status() -> None:
    async def bot(ws: ServerConnection, peer: Peer) -> None:
        raise AssertionError("no media connection expected")

    async with scripted_peer(bot, status=401) as peer:
        with pytest.raises(CallSetupError, match="HTTP 401"):
            await SimulatedCaller(_options(peer)).run([])


async def test_unreachable_server_says_what_to_do() -> None:
    async with scripted_peer(lambda ws, peer: asyncio.sleep(0)) as peer:
        closed_port = peer.http_port
    with pytest.raises(CallSetupError, match=r"connection refused.*realtime-voice serve"):
        await SimulatedCaller(
            CallOptions(http_url=f"http://127.0.0.1:{closed_port}", transcribe_bot=False)
        ).run([])


def test_caller_line_needs_exactly_one_action() -> None:
    with pytest.raises(ValueError):
        CallerLine()
    with pytest.raises(ValueError):
        CallerLine(text="hi", dtmf="1")
    with pytest.raises(ValueError):
        CallerLine(dtmf="x")
    assert CallerLine(audio=b"\xff" * 8000).label == "<audio 1.0 s>"


def test_call_ids_follow_the_protocol() -> None:
    assert CallOptions().call_id.startswith("call-")
    twilio = CallOptions(protocol="twilio").call_id
    assert twilio.startswith("CA") and len(twilio) == 34
