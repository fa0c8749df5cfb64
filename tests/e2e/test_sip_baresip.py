"""The issue's proof: a real softphone (baresip, Debian ``baresip-core``) calls the bot
through the fake RingCentral edge, over TLS + SDES-SRTP, with Opus and with PCMU.

The server registers as the device; baresip dials the device's number at the edge; the
edge bridges the call over the server's registered flow with the media through its relay
(SRTP end to end). baresip plays a WAV of the caller's lines; what the bot said is
transcribed from baresip's own recording of what it heard. DTMF digits sent by baresip
reach the flow; "a manager, please" ends in a REFER. The PCMU call runs with recordings
on: the server's stereo file of it says the caller's words on one side and the bot's on
the other. Assertions are on key words.
"""

from __future__ import annotations

import asyncio
import io
import re
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.config_console import ConsoleSettings
from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.baresip import Baresip, BaresipAccount, baresip_available
from realtime_voice.testing.sip_edge import Bridge, FakeRingCentralEdge
from realtime_voice.testing.speech import caller_audio_pcm16, transcribe_pcm16
from realtime_voice.testing.tls_certs import LoopbackCertificates

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not baresip_available(),
                       reason="baresip not installed (apt-get install baresip-core)"),
]

USER, AUTH_ID, PASSWORD, TOKEN = "16505550100", "802398765", "s3cret", "k" * 32
_RATE = 16000


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


async def caller_wav(path: Path, script: list[str | float]) -> Path:
    """The caller's microphone: lines and pauses (seconds), 16 kHz mono."""
    pieces = []
    for item in script:
        if isinstance(item, str):
            pieces.append(await caller_audio_pcm16(item))
        else:
            pieces.append(np.zeros(int(item * _RATE), dtype=np.int16))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(_RATE)
        out.writeframes(np.concatenate(pieces).tobytes())
    return path


def heard(path: Path) -> np.ndarray:
    """baresip's RX recording as 16 kHz mono PCM16."""
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels)[:, 0].copy()
    if rate == _RATE:
        return pcm
    if rate == 48000:
        return pcm[::3].copy()  # Opus decodes band-limited to 8 kHz here: plain decimation
    return StreamingResampler(rate, _RATE).process(pcm)


@asynccontextmanager
async def call_the_bot(
    make_server: Callable[..., object], tmp_path: Path, codec: str, wav: Path,
    *, recordings: bool = False,
) -> AsyncIterator[tuple[VoiceServer, Baresip, Bridge]]:
    certs = LoopbackCertificates()
    ca_file = certs.write_ca(tmp_path / "ca.pem")
    async with FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD},
                                   ssl_context=certs.server_context()) as edge:
        server = await make_server(  # type: ignore[misc]
            rc_sip_domain="sip.ringcentral.com", rc_sip_outbound_proxy=("127.0.0.1", edge.port),
            rc_sip_username=USER, rc_sip_password=PASSWORD, rc_sip_authorization_id=AUTH_ID,
            rc_sip_ca_file=str(ca_file), api_token=TOKEN,
            console=ConsoleSettings(data_dir=str(tmp_path / "data"), recordings=recordings))
        assert isinstance(server, VoiceServer)
        await edge.wait_registered(USER, timeout_s=10)
        account = BaresipAccount(user="caller", audio_codecs=(codec,), mediaenc="srtp-mand")
        async with Baresip(tmp_path / "baresip", account, ca_file=ca_file,
                           play_wav=wav) as phone:
            await phone.dial(f"sip:{USER}@127.0.0.1:{edge.port}")
            await phone.wait_event("CALL_ESTABLISHED", timeout_s=15)
            assert edge.bridges, "the edge bridged the call to the device"
            yield server, phone, edge.bridges[-1]


async def until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll a condition on the server's live state (it has no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def record_of(server: VoiceServer, call_id: str) -> dict[str, object]:
    await server.manager.wait_idle()
    await server.recorder.flush()
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{server.http_port}/api/calls/{call_id}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        assert resp.status == 200
        record: dict[str, object] = await resp.json()
    return record


async def recording_of(server: VoiceServer, call_id: str) -> tuple[int, np.ndarray, np.ndarray]:
    """The call's recording as the API serves it: (rate, caller channel, bot channel)."""
    assert server.recordings.writer is not None
    await server.recordings.writer.flush()
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{server.http_port}/api/calls/{call_id}/recording",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        assert resp.status == 200 and resp.content_type == "audio/wav"
        raw = await resp.read()
    with wave.open(io.BytesIO(raw), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
        return wav.getframerate(), frames[:, 0].copy(), frames[:, 1].copy()


async def srtp_auth_failures(server: VoiceServer) -> str:
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{server.http_port}/metrics"
    ) as resp:
        text = await resp.text()
    match = re.search(r'voice_srtp_dropped_total\{reason="auth"\} (\S+)', text)
    assert match is not None
    return match.group(1)


async def test_baresip_over_opus_asks_the_hours_then_for_a_manager(
    make_server: Callable[..., object], tmp_path: Path,
) -> None:
    wav = await caller_wav(tmp_path / "caller.wav", [
        6.0, "What time do you open?", 9.0, "Can I speak to a manager please?", 40.0])
    async with call_the_bot(make_server, tmp_path, "opus/48000/2", wav) as (
            server, phone, bridge):
        menc = await phone.wait_event("CALL_MENC", timeout_s=5)
        assert "AES_CM_128_HMAC_SHA1_80" in str(menc.get("param"))
        await bridge.wait_done(timeout_s=60)
        assert bridge.transfers == ["<sip:+15555550100@sip.ringcentral.com>"]
        await phone.wait_event("CALL_CLOSED", timeout_s=10)
        assert await srtp_auth_failures(server) == "0.0"
        assert bridge.device_call is not None
        record = await record_of(server, bridge.device_call.call_id)
    assert record["end_reason"] == "transferred"
    caller_turns = [t for t in record["turns"] if t["speaker"] == "caller"]  # type: ignore[attr-defined]
    assert "open" in words(caller_turns[0]["text"])
    said = words(await transcribe_pcm16(heard(phone.rx_recordings()[-1])))
    assert any(w in said for w in ("open", "tuesday", "sunday", "hours")), said


async def test_baresip_over_pcmu_sends_digits_and_hangs_up(
    make_server: Callable[..., object], tmp_path: Path,
) -> None:
    wav = await caller_wav(tmp_path / "caller.wav", [6.0, "What time do you open?", 40.0])
    async with call_the_bot(make_server, tmp_path, "PCMU/8000", wav, recordings=True) as (
            server, phone, bridge):
        assert bridge.device_call is not None
        call_id = bridge.device_call.call_id
        # The session starts once the edge's ACK reached the server.
        await until(lambda: server.manager.get(call_id) is not None, 10)
        session = server.manager.get(call_id)
        assert session is not None
        # The digits go once the bot has answered the question (its second turn).
        await until(lambda: sum(1 for h in session.call.context.history
                                if h.speaker == "bot") >= 2, 30)
        await phone.send_dtmf("42#")
        await until(lambda: session.call.stats.dtmf_digits >= 3, 10)
        await phone.hangup()
        await phone.wait_event("CALL_CLOSED", timeout_s=10)
        assert await srtp_auth_failures(server) == "0.0"
        record = await record_of(server, call_id)
        recording = await recording_of(server, call_id)
    digits = "".join(e["data"]["digit"] for e in record["events"]  # type: ignore[attr-defined]
                     if e["kind"] == "dtmf")
    assert digits == "42#"
    assert record["end_reason"] == "caller_hangup"  # the BYE
    said = words(await transcribe_pcm16(heard(phone.rx_recordings()[-1])))
    assert any(w in said for w in ("open", "tuesday", "sunday", "hours")), said
    # The server's own recording of the SIP call: the caller on the left, the bot on the
    # right, each channel saying what that side said.
    assert record["recording"], record
    rate, caller_side, bot_side = recording
    assert rate == _RATE  # the SIP leg's PCM rate, whatever the codec on the wire
    assert "open" in words(await transcribe_pcm16(caller_side))
    bot_said = words(await transcribe_pcm16(bot_side))
    assert any(w in bot_said for w in ("open", "tuesday", "sunday", "hours")), bot_said
