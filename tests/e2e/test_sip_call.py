"""Whole calls over the SIP leg: the server registers with the fake RingCentral edge over
verified TLS, the edge pushes a call over that flow, and a caller on real SRTP (our own
RTP stream as the phone) talks to the bot through the offline engines.

The bot's answers are transcribed by the offline recogniser, so assertions are on key
words, never exact text.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from realtime_voice.legs.media_clock import MediaClock
from realtime_voice.legs.sip_media import FRAME_BYTES, RtpStream
from realtime_voice.protocols.base import AudioEvent
from realtime_voice.rtp.packet import RtpSequencer
from realtime_voice.rtp.srtp import SrtpContext
from realtime_voice.server.app import VoiceServer
from realtime_voice.sip import sdp as sdp_text
from realtime_voice.sip.sdp_negotiation import (
    OPUS_16000,
    PCMU,
    Codec,
    apply_answer,
    generate_key,
    offer,
)
from realtime_voice.testing.ringcentral_notify import WebhookNotifier
from realtime_voice.testing.ringcentral_sim import RingCentralSimulator
from realtime_voice.testing.sip_edge import EdgeCall, FakeRingCentralEdge
from realtime_voice.testing.speech import caller_audio_pcm16, transcribe_pcm16
from realtime_voice.testing.tls_certs import LoopbackCertificates

from .conftest import operator_headers

pytestmark = pytest.mark.e2e

USER = "16505550100"
AUTH_ID = "802398765"
PASSWORD = "s3cret"
_SPEECH_RMS = 300.0  # PCM16 units: above line noise, below any spoken word
_END_SILENCE_FRAMES = 40  # 0.8 s of silence ends an utterance


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


@dataclass
class Phone:
    """The caller's handset: an RTP stream and everything it heard, frame by frame."""

    stream: RtpStream
    heard: list[bytes] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self) -> None:
        while (event := await self.stream.next_event()) is not None:
            if isinstance(event, AudioEvent):
                self.heard.append(event.payload)
                self.arrived.set()

    async def next_utterance(self, start: int, timeout_s: float = 30.0) -> tuple[np.ndarray, int]:
        """The next stretch of bot speech heard after frame ``start`` (and where it ended)."""

        async def wait() -> tuple[np.ndarray, int]:
            index, first, quiet = start, None, 0
            while True:
                while index >= len(self.heard):
                    self.arrived.clear()
                    await self.arrived.wait()
                frame = np.frombuffer(self.heard[index], dtype=np.int16)
                loud = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) > _SPEECH_RMS
                if first is None:
                    if loud:
                        first = index
                elif loud:
                    quiet = 0
                else:
                    quiet += 1
                    if quiet >= _END_SILENCE_FRAMES:
                        pcm = np.frombuffer(b"".join(self.heard[first:index]), dtype=np.int16)
                        return pcm, index
                index += 1

        return await asyncio.wait_for(wait(), timeout_s)

    async def speech_starts(self, timeout_s: float = 30.0) -> None:
        """Until the first frame of bot speech is heard."""

        async def wait() -> None:
            index = 0
            while True:
                while index >= len(self.heard):
                    self.arrived.clear()
                    await self.arrived.wait()
                frame = np.frombuffer(self.heard[index], dtype=np.int16)
                if float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) > _SPEECH_RMS:
                    return
                index += 1

        await asyncio.wait_for(wait(), timeout_s)

    async def say(self, text: str) -> None:
        """Queue the line on the stream, which plays it out on its 20 ms clock."""
        pcm = (await caller_audio_pcm16(text)).tobytes()
        pcm += b"\x00" * (-len(pcm) % FRAME_BYTES)
        for offset in range(0, len(pcm), FRAME_BYTES):
            self.stream.send_audio(pcm[offset:offset + FRAME_BYTES])


@asynccontextmanager
async def sip_call(
    make_server: Callable[..., object], tmp_path: Path, codec: Codec, **settings: object,
) -> AsyncIterator[tuple[VoiceServer, FakeRingCentralEdge, EdgeCall, Phone]]:
    certs = LoopbackCertificates()
    ca_file = certs.write_ca(tmp_path / "ca.pem")
    async with FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD},
                                   ssl_context=certs.server_context()) as edge:
        server = await make_server(  # type: ignore[misc]
            rc_sip_domain="sip.ringcentral.com", rc_sip_outbound_proxy=("127.0.0.1", edge.port),
            rc_sip_username=USER, rc_sip_password=PASSWORD, rc_sip_authorization_id=AUTH_ID,
            rc_sip_ca_file=str(ca_file), **settings)
        assert isinstance(server, VoiceServer)
        await edge.wait_registered(USER, timeout_s=10)
        stream = await RtpStream.open(host="127.0.0.1", clock=MediaClock(), name="phone")
        phone = Phone(stream)
        our_offer = offer(address="127.0.0.1", port=stream.local_port, key=generate_key(),
                          codecs=(codec,))
        edge_call = await edge.invite(USER, offer=sdp_text.serialize(our_offer).encode(),
                                      from_number="+16505550199")
        final = await edge_call.wait_final(10)
        assert final.status == 200
        await edge_call.ack()
        stream.start(apply_answer(our_offer, sdp_text.parse(final.body), codecs=(codec,)))
        listener = asyncio.create_task(phone.listen())
        try:
            yield server, edge, edge_call, phone
        finally:
            await stream.close()
            await listener


@pytest.mark.parametrize("codec", [OPUS_16000, PCMU], ids=["opus16k", "pcmu"])
async def test_a_sip_call_holds_a_conversation_and_is_recorded(
    make_server: Callable[..., object], tmp_path: Path, codec: Codec,
) -> None:
    async with sip_call(make_server, tmp_path, codec) as (server, _edge, edge_call, phone):
        greeting, end = await phone.next_utterance(0)
        assert len(greeting) > 16000  # more than a second of speech
        await phone.say("What time do you open?")
        answer, end = await phone.next_utterance(end)
        text = words(await transcribe_pcm16(answer))
        assert any(w in text for w in ("open", "tuesday", "sunday", "hours")), text
        await phone.say("Thank you, goodbye.")
        bye = await edge_call.wait_bye(timeout_s=30)
        assert bye.method == "BYE"
        stats = phone.stream.stats()
        assert stats.srtp_auth_failures == 0 and stats.srtp_replays == 0
        await server.manager.wait_idle()
        await server.recorder.flush()
        async with aiohttp.ClientSession(headers=operator_headers()) as http, http.get(
            f"http://127.0.0.1:{server.http_port}/api/calls/{edge_call.call_id}"
        ) as resp:
            assert resp.status == 200, "the call record is keyed by the SIP Call-ID"
            record = await resp.json()
        assert record["end_reason"] == "completed"
        assert [t["speaker"] for t in record["turns"]][:2] == ["bot", "caller"]


async def test_barging_in_for_a_manager_ends_in_a_refer_and_forged_srtp_is_counted(
    make_server: Callable[..., object], tmp_path: Path,
) -> None:
    async with sip_call(make_server, tmp_path, OPUS_16000) as (server, _edge, edge_call, phone):
        await phone.speech_starts()
        # Packets under a key the server never agreed: dropped and counted, call unharmed.
        answer = sdp_text.parse(edge_call.remote_sdp or b"")
        forger = SrtpContext(generate_key(), generate_key())
        sequencer = RtpSequencer(109, 16000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for _ in range(3):
                packet = sequencer.next_audio(b"\x00" * 40).to_bytes()
                raw.sendto(forger.protect(packet), ("127.0.0.1", answer.media[0].port))
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.http_port}"
            async with http.get(f"{base}/api/voice/realtime/health") as resp:
                health = await resp.json()
            assert health["sip"]["registration"] == "registered"
            for _ in range(100):  # the datagrams are in flight on loopback
                async with http.get(f"{base}/metrics") as resp:
                    text = await resp.text()
                if 'voice_srtp_dropped_total{reason="auth"} 3.0' in text:
                    break
                await asyncio.sleep(0.02)
            assert 'voice_srtp_dropped_total{reason="auth"} 3.0' in text
            assert "voice_sip_registered 1.0" in text
        # Talking over the greeting: barge-in flushes the stream's queue at once.
        await phone.say("Can I speak to a manager please?")
        refer = await edge_call.wait_refer(timeout_s=30)
        assert refer.headers.get("Refer-To") == "<sip:+15555550100@sip.ringcentral.com>"
        await server.manager.wait_idle()
        assert server.sip.media_totals()["frames_cleared"] > 0


async def test_a_known_telephony_session_is_transferred_by_call_control(
    make_server: Callable[..., object], tmp_path: Path,
) -> None:
    sim = RingCentralSimulator()
    await sim.start()
    token = "5f1c0c9e8d6a4f21a7c55e0d2b9c4e12"
    try:
        async with sip_call(
            make_server, tmp_path, PCMU, rc_server_url=sim.url, rc_client_id=sim.client_id,
            rc_client_secret=sim.client_secret, rc_jwt_token=sim.jwt,
            rc_webhook_verification_token=token,
        ) as (server, _edge, edge_call, phone), aiohttp.ClientSession() as http:
            await phone.speech_starts()
            # RingCentral reports the call's telephony session, naming our SIP Call-ID.
            notifier = WebhookNotifier(
                http, f"http://127.0.0.1:{server.http_port}/api/ringcentral/webhook", token)
            tsid = notifier.new_call(sip_call_id=edge_call.call_id)
            sim.add_session(tsid, notifier.party_id(tsid))
            assert await notifier.status(tsid, "Answered") == 200
            await server.ringcentral.join()
            await phone.say("Can I speak to a manager please?")
            for _ in range(1500):  # the transfer request is on its way to the platform
                if sim.requests_to("POST", "/transfer"):
                    break
                await asyncio.sleep(0.02)
            transfer = sim.requests_to("POST", "/transfer")
            assert transfer and tsid in transfer[0].path
            await server.manager.wait_idle()
            assert not edge_call.refer_to  # Call Control did it: no REFER
    finally:
        await sim.close()
