"""The media plane's contract over real sockets (docs/PROTOCOLS.md §2, §3, §5)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime_voice.security.twilio_signature import twilio_signature
from realtime_voice.server.app import VoiceServer

pytestmark = pytest.mark.e2e

SILENCE = b"\xff" * 160


def bridge_url(server: VoiceServer, call_id: str, token: str | None, **extra: str) -> str:
    query = {"call_id": call_id, "from_number": "+15555551234", "to_number": "+15555555678"}
    if token is not None:
        query["token"] = token
    query.update(extra)
    return f"ws://127.0.0.1:{server.media_port}/api/voice/realtime/ws/call?{urlencode(query)}"


async def answer(server: VoiceServer, call_id: str) -> str:
    """Ask the webhook to answer ``call_id``; returns the media URL it hands out."""
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{server.http_port}/api/voice/inbound",
        json={"event": "call.inbound", "body": {"id": call_id,
              "from": {"phoneNumber": "+15555551234"}, "to": {"phoneNumber": "+15555555678"}}},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    url: str = body["media"]["url"]
    return url


async def close_code(ws: ClientConnection) -> int | None:
    """Drain until the server closes; the close code it sent."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return ws.close_code


async def read_until(
    ws: ClientConnection, want: Callable[[dict[str, object]], bool], *, audio: list[bytes]
) -> dict[str, object]:
    """Read frames (keeping audio) until a JSON frame satisfies ``want``."""
    async for message in ws:
        if isinstance(message, bytes):
            audio.append(message)
            continue
        frame = json.loads(message)
        if want(frame):
            return frame
    raise AssertionError(f"connection closed ({ws.close_code}) before the expected frame")


async def stream_silence(ws: ClientConnection, stop: asyncio.Event) -> None:
    """Send silence at real time, as a gateway does while the caller is quiet."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    k = 0
    while not stop.is_set():
        await ws.send(SILENCE)
        k += 1
        await asyncio.sleep(max(0.0, t0 + k * 0.02 - loop.time()))


async def test_bad_tokens_are_refused_with_1008(server: VoiceServer) -> None:
    url = await answer(server, "call-tok")
    for bad in (
        bridge_url(server, "call-tok", None),
        bridge_url(server, "call-tok", "garbage"),
        bridge_url(server, "other-call", url.split("token=")[1]),
    ):
        async with connect(bad) as ws:
            assert await close_code(ws) == 1008
    # The real token still works once, then it is spent.
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "stop"}))
        assert await close_code(ws) == 1000
    async with connect(url) as ws:
        assert await close_code(ws) == 1008
    assert server.manager.total_calls == 1


async def test_unsupported_format_is_1003(server: VoiceServer) -> None:
    token = server.tokens.mint("call-fmt")
    async with connect(bridge_url(server, "call-fmt", token, encoding="opus")) as ws:
        assert await close_code(ws) == 1003


async def test_at_capacity_is_1013(make_server: Callable[..., object]) -> None:
    server = await make_server(max_calls=1)  # type: ignore[misc]
    assert isinstance(server, VoiceServer)
    first = await answer(server, "call-a")
    async with connect(first) as ws_a:
        await ws_a.send(json.dumps({"type": "start"}))
        token = server.tokens.mint("call-b")
        async with connect(bridge_url(server, "call-b", token)) as ws_b:
            assert await close_code(ws_b) == 1013
        await ws_a.send(json.dumps({"type": "stop"}))
        assert await close_code(ws_a) == 1000


async def test_greeting_audio_and_mark_then_bad_frames(server: VoiceServer) -> None:
    url = await answer(server, "call-greet")
    audio: list[bytes] = []
    async with connect(url) as ws:
        stop = asyncio.Event()
        sender = asyncio.create_task(stream_silence(ws, stop))
        await ws.send(json.dumps({"type": "start", "customParameters": {"customer_name": "Ana"}}))
        mark = await read_until(ws, lambda f: f.get("type") == "mark", audio=audio)
        assert mark == {"type": "mark", "name": "greeting_done"}
        # About real-time speech: 160-byte mu-law frames, a second or more of them.
        assert audio and all(len(frame) == 160 for frame in audio)
        assert len(audio) >= 50
        # A malformed frame is answered with an error frame; the call goes on.
        await ws.send("{not json")
        error = await read_until(ws, lambda f: f.get("type") == "error", audio=audio)
        assert error["code"] == "bad_message"
        assert isinstance(error["message"], str) and error["message"]
        await ws.send(json.dumps({"type": "dtmf", "digit": "5"}))
        await ws.send(json.dumps({"type": "mark", "name": "greeting_done"}))
        reply = await read_until(
            ws, lambda f: f.get("type") == "mark" and f.get("name") != "greeting_done", audio=audio
        )
        assert str(reply["name"]).startswith("response_")
        stop.set()
        await sender
        await ws.send(json.dumps({"type": "stop"}))
        assert await close_code(ws) == 1000
    await server.manager.wait_idle()
    assert server.manager.stats()["completed_calls"] == 1


async def test_max_errors_ends_the_call_with_1008(make_server: Callable[..., object]) -> None:
    server = await make_server(max_errors=3)  # type: ignore[misc]
    assert isinstance(server, VoiceServer)
    url = await answer(server, "call-errs")
    async with connect(url) as ws:
        for bad in ("nope", json.dumps({"type": "bogus"}), json.dumps([1])):
            await ws.send(bad)
        errors = []
        try:
            async for message in ws:
                if isinstance(message, str):
                    errors.append(json.loads(message))
        except ConnectionClosed:
            pass
        assert ws.close_code == 1008
    assert [e["type"] for e in errors] == ["error", "error", "error"]
    await server.manager.wait_idle()
    assert server.manager.stats()["failed_calls"] == 1


async def test_oversized_message_is_refused(server: VoiceServer) -> None:
    url = await answer(server, "call-big")
    async with connect(url, max_size=None) as ws:
        await ws.send(b"\xff" * (server.settings.max_message_bytes + 1))
        assert await close_code(ws) == 1009


async def test_inactivity_timeout_ends_the_call(make_server: Callable[..., object]) -> None:
    server = await make_server(websocket_timeout_s=1.0)  # type: ignore[misc]
    assert isinstance(server, VoiceServer)
    url = await answer(server, "call-quiet")
    async with connect(url) as ws:
        assert await close_code(ws) == 1000
        assert ws.close_reason == "inactivity_timeout"


async def test_health_on_both_ports(server: VoiceServer) -> None:
    async with aiohttp.ClientSession() as http:
        for port in (server.http_port, server.media_port):
            async with http.get(f"http://127.0.0.1:{port}/api/voice/realtime/health") as resp:
                assert resp.status == 200
                body = await resp.json()
                assert body["status"] == "healthy"
                assert body["deepgram"] == "offline"
        async with http.get(f"http://127.0.0.1:{server.http_port}/metrics") as resp:
            text = await resp.text()
            assert "voice_active_calls 0" in text


async def test_twilio_stream_speaks_twilio(server: VoiceServer) -> None:
    call_sid = "CA" + "1" * 32
    url = await answer(server, call_sid)
    token = url.split("token=")[1]
    stream_sid = "MZ" + "2" * 32
    async with connect(f"ws://127.0.0.1:{server.media_port}/api/voice/twilio/ws") as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
            "start": {"accountSid": "AC1", "streamSid": stream_sid, "callSid": call_sid,
                      "tracks": ["inbound"], "customParameters": {"token": token},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}))
        media = 0
        async for message in ws:
            assert isinstance(message, str)
            event = json.loads(message)
            assert event["streamSid"] == stream_sid
            if event["event"] == "media":
                assert len(base64.b64decode(event["media"]["payload"])) == 160
                media += 1
            elif event["event"] == "mark":
                assert event["mark"]["name"] == "greeting_done"
                break
        assert media >= 50
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "9",
                                  "streamSid": stream_sid,
                                  "stop": {"accountSid": "AC1", "callSid": call_sid}}))
        assert await close_code(ws) == 1000


async def test_twilio_without_valid_token_is_refused(server: VoiceServer) -> None:
    async with connect(f"ws://127.0.0.1:{server.media_port}/api/voice/twilio/ws") as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
            "start": {"streamSid": "MZ1", "callSid": "CA9", "customParameters": {"token": "x"},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}))
        assert await close_code(ws) == 1008
    assert server.manager.total_calls == 0


async def test_tts_preview_endpoint_returns_a_wav(server: VoiceServer) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/voice/test", params={"text": "Hello there."}) as resp:
            assert resp.status == 200
            assert resp.content_type == "audio/wav"
            body = await resp.read()
        async with http.post(f"{base}/api/voice/test") as resp:
            assert resp.status == 400
            assert (await resp.json())["parameter"] == "text"
    with wave.open(io.BytesIO(body)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() > 16000 // 2  # more than half a second of speech


async def test_twilio_upgrade_signature_is_checked(make_server: Callable[..., object]) -> None:
    server = await make_server(twilio_auth_token="twilio-auth-token-1")  # type: ignore[misc]
    assert isinstance(server, VoiceServer)
    url = f"ws://127.0.0.1:{server.media_port}/api/voice/twilio/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 403
    signature = twilio_signature("twilio-auth-token-1", url, [])
    async with connect(url, additional_headers={"X-Twilio-Signature": signature}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "2", "streamSid": "MZ1"}))
        assert await close_code(ws) == 1008  # signed, but no start with a valid token
