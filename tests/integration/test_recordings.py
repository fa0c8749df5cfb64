"""A real call through the server with VOICE_RECORDINGS on, and its recording read back.

One short call (a question, then a barge-in over the answer), placed by the simulated
gateway, which writes its own stereo WAV of what it sent and what it played (playback
stops on ``clear``). The server's recording, fetched from the API, must match it: the
caller on the left where the caller spoke, the bot on the right where the caller heard
it, cut where the barge-in cut it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from realtime_voice.config_console import ConsoleSettings
from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from tests.e2e.conftest import e2e_settings

pytestmark = pytest.mark.e2e

WINDOW_S = 0.02


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[VoiceServer]:
    console = dataclasses.replace(
        ConsoleSettings(), data_dir=str(tmp_path / "data"), recordings=True
    )
    settings = e2e_settings(console=console)
    srv = VoiceServer(settings, engines=build_engines(settings))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(drain_timeout_s=2.0)


def stereo(raw: bytes) -> tuple[int, np.ndarray, np.ndarray]:
    with wave.open(io.BytesIO(raw), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
        return wav.getframerate(), frames[:, 0].astype(np.float64), frames[:, 1].astype(
            np.float64
        )


def envelope(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS per 20 ms window."""
    n = int(rate * WINDOW_S)
    usable = x[: x.size // n * n].reshape(-1, n)
    rms: np.ndarray = np.sqrt((usable**2).mean(axis=1))
    return rms


def shifted(env: np.ndarray, lag: int, length: int) -> np.ndarray:
    out = np.zeros(length)
    src = env[max(0, -lag):]
    dst = max(0, lag)
    k = min(src.size, length - dst)
    out[dst:dst + k] = src[:k]
    return out


async def fetch_while_live(
    server: VoiceServer, call_id: str, auth: dict[str, str], call: asyncio.Task[object]
) -> bytes:
    """The call's recording fetched while the call goes on, once it holds a second."""
    url = f"http://127.0.0.1:{server.http_port}/api/calls/{call_id}/recording"
    async with aiohttp.ClientSession(headers=auth) as http:
        async with asyncio.timeout(20):
            while not call.done():
                async with http.get(url) as resp:
                    body = await resp.read()
                    if resp.status == 200 and len(body) >= 44 + 8000 * 4:
                        assert server.manager.get(call_id) is not None, "no longer live"
                        return body
                await asyncio.sleep(0.1)  # polling a condition, not waiting a fixed time
    raise AssertionError("the call ended before its recording held a second")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


async def test_a_recorded_call_matches_what_the_caller_said_and_heard(
    server: VoiceServer, tmp_path: Path
) -> None:
    client_wav = tmp_path / "client.wav"
    options = CallOptions(
        http_url=f"http://127.0.0.1:{server.http_port}",
        record_path=str(client_wav),
        transcribe_bot=False,
        max_call_s=40.0,
        end_after_last_line_s=1.0,
    )
    auth = {"Authorization": f"Bearer {server.operator_token.token}"}
    # One line, over the greeting: the shortest call with both sides and a barge-in.
    call = asyncio.create_task(SimulatedCaller(options).run([
        CallerLine("Sorry, can I talk to a manager?", barge_in_after_s=1.5),
    ]))
    live = await fetch_while_live(server, options.call_id, auth, call)
    report = await call
    await server.manager.wait_idle()
    # Mid-call, the recording so far was served with a header that matches it.
    rate, live_left, _ = stereo(live)
    assert rate == 8000 and live_left.size / rate >= 1.0
    assert report.clears, "the barge-in did not cut the bot"
    assert server.recordings.writer is not None
    await server.recordings.writer.flush()

    base = f"http://127.0.0.1:{server.http_port}/api/calls/{report.call_id}"
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.get(base) as resp:
            assert resp.status == 200
            recording = (await resp.json())["recording"]
        async with http.get(base + "/recording") as resp:
            assert resp.status == 200 and resp.content_type == "audio/wav"
            raw = await resp.read()
    assert recording["bytes"] == len(raw)
    assert recording["duration_s"] == pytest.approx(report.duration_s, abs=0.5)

    rate, left, right = stereo(raw)
    assert rate == 8000
    c_rate, c_left, c_right = stereo(client_wav.read_bytes())
    server_l, server_r = envelope(left, rate), envelope(right, rate)
    client_l, client_r = envelope(c_left, c_rate), envelope(c_right, c_rate)
    # Both files start at the call's start, a few ms apart (the handshake): find the lag
    # on the caller's side (the very same audio), then hold both channels to it.
    n = max(server_l.size, client_l.size)
    lag = max(range(-10, 11), key=lambda k: correlation(shifted(client_l, k, n),
                                                      shifted(server_l, 0, n)))
    assert abs(lag) <= 5, f"the recording is {lag * WINDOW_S:.2f} s off the caller's"
    assert correlation(shifted(client_l, lag, n), shifted(server_l, 0, n)) > 0.95
    # The bot's side is what the caller heard, cut included.
    assert correlation(shifted(client_r, lag, n), shifted(server_r, 0, n)) > 0.9
    assert server_l.max() > 0.01 * 32768 and server_r.max() > 0.01 * 32768

    # Around the barge-in: the bot was heard before the cut, then nothing until the next
    # reply (the caller is still saying their line).
    cut = round(report.clears[0] / WINDOW_S) - lag
    assert server_r[cut - 25:cut].mean() > 0.005 * 32768
    assert server_r[cut + 5:cut + 40].max() < 1e-3 * 32768
    assert server_l[cut - 40:cut + 40].max() > 0.01 * 32768  # the caller talking over it
