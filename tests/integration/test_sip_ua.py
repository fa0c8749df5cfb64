"""The SIP user agent against the fake RingCentral edge, over real TLS on loopback.

Registration (challenge variants, refusals that never loop, reconnect after a dropped
connection), calls pushed over the registered flow (auto-answer, delayed offer, CANCEL,
re-INVITE hold and rekey, UPDATE refresh, INFO/MESSAGE/OPTIONS, BYE both ways) and blind
transfer by REFER with its NOTIFY sipfrag.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import pytest

from realtime_voice.sip import sdp as sdp_text
from realtime_voice.sip.call import IncomingCall, MediaUpdate, SipCall
from realtime_voice.sip.outbound import DialOutcome
from realtime_voice.sip.registration import RegistrationState, SipAccount
from realtime_voice.sip.sdp_model import Direction
from realtime_voice.sip.sdp_negotiation import PCMU, NegotiatedMedia, generate_key, offer
from realtime_voice.sip.ua import SipUserAgent, UaSettings
from realtime_voice.testing.sip_edge import (
    Callee,
    CalleeScript,
    EdgeCall,
    EdgeKnobs,
    FakeRingCentralEdge,
)
from realtime_voice.testing.tls_certs import LoopbackCertificates

USER = "16505550100"
AUTH_ID = "802398765"
PASSWORD = "s3cret"
FAST = UaSettings(keepalive_interval_s=5.0, refresh_interval_s=30.0, refusal_retry_s=0.05,
                  max_refusals=2, t1_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2)

CERTS = LoopbackCertificates()


def edge_offer(port: int = 41000, *, key: bytes | None = None,
               direction: Direction = Direction.SENDRECV) -> bytes:
    """An SDES offer like RingCentral's (PCMU + telephone-event), as bytes."""
    sdp = offer(address="127.0.0.1", port=port, key=key or generate_key(), codecs=(PCMU,),
                direction=direction)
    return sdp_text.serialize(sdp).encode()


class Device:
    """The UA plus what its call handler saw."""

    def __init__(self, ua: SipUserAgent) -> None:
        self.ua = ua
        self.incoming: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.calls: asyncio.Queue[SipCall] = asyncio.Queue()
        self.updates: list[MediaUpdate] = []
        self.answer = True

    async def on_call(self, incoming: IncomingCall) -> None:
        await self.incoming.put(incoming)
        if not self.answer:
            # Hold the INVITE unanswered until the caller gives up.
            await incoming.transaction.cancelled.wait()
            return
        call = await incoming.answer(address="127.0.0.1", port=42000, key=generate_key())
        call.on_media = self.updates.append
        await self.calls.put(call)


@asynccontextmanager
async def device_and_edge(
    knobs: EdgeKnobs | None = None, *, password: str = PASSWORD,
    settings: UaSettings = FAST,
) -> AsyncIterator[tuple[Device, FakeRingCentralEdge]]:
    async with FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD}, knobs=knobs,
                                   ssl_context=CERTS.server_context()) as edge:
        account = SipAccount(domain="sip.ringcentral.com", username=USER, password=password,
                             authorization_id=AUTH_ID, proxy_host="127.0.0.1",
                             proxy_port=edge.port)
        holder: list[Device] = []

        async def on_call(incoming: IncomingCall) -> None:
            await holder[0].on_call(incoming)

        ua = SipUserAgent(account, ssl_context=CERTS.client_context(), on_call=on_call,
                          settings=settings)
        device = Device(ua)
        holder.append(device)
        await ua.start()
        try:
            yield device, edge
        finally:
            await ua.stop()


async def within(awaitable: Awaitable[object], seconds: float = 5.0) -> object:
    return await asyncio.wait_for(awaitable, seconds)


async def established(device: Device, edge: FakeRingCentralEdge, *,
                      offer_sdp: bytes | None = None) -> tuple[SipCall, EdgeCall]:
    await edge.wait_registered(USER)
    edge_call = await edge.invite(USER, offer=offer_sdp or edge_offer())
    final = await edge_call.wait_final()
    assert final.status == 200
    await edge_call.ack()
    call = await asyncio.wait_for(device.calls.get(), 5)
    return call, edge_call


@pytest.mark.parametrize("knobs", [
    EdgeKnobs(),  # RingCentral's SDK style: MD5, no qop
    EdgeKnobs(qop="auth"),
    EdgeKnobs(algorithm="SHA-256", qop="auth"),
    EdgeKnobs(stale_once=True),
], ids=["md5-no-qop", "md5-qop", "sha256", "stale"])
async def test_registers_over_verified_tls(knobs: EdgeKnobs) -> None:
    async with device_and_edge(knobs) as (device, edge):
        binding = await edge.wait_registered(USER)
        status = await device.ua.wait_registered(5)
        assert status.state is RegistrationState.REGISTERED
        assert binding.reg_id == "1"
        assert binding.instance == f"<{device.ua.instance_id}>"
        assert "ob" in str(binding.contact.uri)


async def test_a_wrong_password_is_refused_a_bounded_number_of_times() -> None:
    async with device_and_edge(password="wrong") as (device, edge):
        status = await device.ua.wait_registered(5)
        assert status.state is RegistrationState.REFUSED
        assert "RC_SIP_PASSWORD" in status.detail
        # max_refusals=2: two attempts of (REGISTER, 401, REGISTER, 401), then silence.
        await asyncio.wait_for(device.ua._main or asyncio.sleep(0), 5)  # the loop gave up
        assert len(edge.registrations) == 4
        assert device.ua.status.state is RegistrationState.REFUSED


async def test_forbidden_is_refused() -> None:
    async with device_and_edge(EdgeKnobs(forbid=True)) as (device, _edge):
        status = await device.ua.wait_registered(5)
        assert status.state is RegistrationState.REFUSED and status.status == 403


async def test_a_dropped_connection_is_reconnected_and_registered_again() -> None:
    async with device_and_edge() as (device, edge):
        first = await edge.wait_registered(USER)
        edge.drop_flow(USER)
        second = await edge.wait_registered(USER, newer_than=first, timeout_s=5)
        assert second.flow is not first.flow
        assert second.instance == first.instance  # the same device instance
        assert (await device.ua.wait_registered(5)).state is RegistrationState.REGISTERED


async def test_answers_a_pushed_call_and_hears_the_bye() -> None:
    async with device_and_edge() as (device, edge):
        call, edge_call = await established(device, edge)
        incoming = device.incoming.get_nowait()
        assert incoming.auto_answer
        assert incoming.caller == "+15550100"
        assert call.media is not None and call.media.srtp is not None
        assert call.media.codec.name == "PCMU"
        answer = sdp_text.parse(edge_call.remote_sdp or b"")
        assert answer.media[0].proto == "RTP/SAVP" and answer.media[0].port == 42000
        assert (await edge_call.bye()).status == 200
        await within(call.ended.wait())
        assert call.end_reason == "remote_bye"


async def test_delayed_offer_takes_the_answer_from_the_ack() -> None:
    async with device_and_edge() as (device, edge):
        await edge.wait_registered(USER)
        edge_call = await edge.invite(USER, offer=None)
        final = await edge_call.wait_final()
        assert final.status == 200
        our_offer = sdp_text.parse(final.body)
        assert our_offer.media[0].proto == "RTP/SAVP"  # our offer, with our key
        # The edge answers with its own key, as RingCentral does.
        answer_sdp = offer(address="127.0.0.1", port=41002, key=generate_key(), codecs=(PCMU,))
        await edge_call.ack(sdp_text.serialize(answer_sdp).encode())
        call = await within(device.calls.get())
        assert isinstance(call, SipCall)
        assert call.media is not None and call.media.remote_port == 41002
        assert our_offer.media[0].port == 42000


async def test_cancel_before_answer_gets_487() -> None:
    async with device_and_edge() as (device, edge):
        device.answer = False
        await edge.wait_registered(USER)
        edge_call = await edge.invite(USER, offer=edge_offer())
        await within(device.incoming.get())
        assert (await edge_call.cancel()).status == 200
        assert (await edge_call.wait_final()).status == 487


async def test_reinvite_hold_unhold_and_rekey_reach_the_media_side() -> None:
    async with device_and_edge() as (device, edge):
        key = generate_key()
        call, edge_call = await established(device, edge, offer_sdp=edge_offer(key=key))
        assert isinstance(call, SipCall)
        response = await edge_call.reinvite(edge_offer(key=key, direction=Direction.SENDONLY))
        assert response.status == 200
        assert sdp_text.parse(response.body).media[0].direction is Direction.RECVONLY
        assert device.updates[-1].changes.hold
        await edge_call.reinvite(edge_offer(key=key))
        assert device.updates[-1].changes.unhold
        await edge_call.reinvite(edge_offer())  # a new a=crypto: rekey
        assert device.updates[-1].changes.remote_rekey
        refresh = await edge_call.update(None)  # a session refresh changes nothing
        assert refresh.status == 200
        assert len(device.updates) == 3


async def test_offerless_reinvite_gets_our_sdp_and_the_ack_answers() -> None:
    async with device_and_edge() as (device, edge):
        call, edge_call = await established(device, edge)
        response = await edge_call.reinvite(None, ack_body=edge_offer(port=41010))
        assert response.status == 200 and response.body
        # The ACK (with the answer) was sent before reinvite() returned; the device
        # applies it when the ACK arrives, which an OPTIONS round trip on the same flow
        # (ordered) proves has happened.
        await edge_call.request("OPTIONS")
        assert call.media is not None and call.media.remote_port == 41010


async def test_info_message_and_options_are_answered() -> None:
    async with device_and_edge() as (device, edge):
        _call, edge_call = await established(device, edge)
        for method in ("INFO", "MESSAGE", "OPTIONS"):
            response = await edge_call.request(method, b"<Msg/>", "application/xml")
            assert response.status == 200, method


async def test_we_hang_up_with_bye() -> None:
    async with device_and_edge() as (device, edge):
        call, edge_call = await established(device, edge)
        await call.hang_up("done")
        bye = await edge_call.wait_bye()
        assert bye.method == "BYE"
        assert call.ended.is_set()


async def test_blind_transfer_by_refer_waits_for_the_notify() -> None:
    async with device_and_edge() as (device, edge):
        call, edge_call = await established(device, edge)
        outcome = await call.transfer("sip:+15555550100@sip.ringcentral.com")
        assert outcome.succeeded, outcome.detail
        refer = await edge_call.wait_refer()
        assert refer.headers.get("Refer-To") == "<sip:+15555550100@sip.ringcentral.com>"


@pytest.mark.parametrize(("script", "outcome", "status"), [
    ("answer", DialOutcome.ANSWERED, 200),
    ("busy", DialOutcome.BUSY, 486),
    ("no_answer", DialOutcome.NO_ANSWER, 487),
    ("fail", DialOutcome.FAILED, 503),
])
async def test_dial_answers_the_407_and_reports_how_it_ended(
    script: CalleeScript, outcome: DialOutcome, status: int,
) -> None:
    async with device_and_edge() as (device, edge):
        callee = Callee(script, credentials={AUTH_ID: PASSWORD})
        edge.callees["+15551230000"] = callee
        assert (await device.ua.wait_registered(5)).state is RegistrationState.REGISTERED
        early: list[NegotiatedMedia] = []
        result = await device.ua.dial("+15551230000", port=43000, key=generate_key(),
                                      ring_timeout_s=0.5, on_early_media=early.append)
        assert result.outcome is outcome and result.status == status, result.detail
        first, second = callee.invites
        assert "Proxy-Authorization" not in first.headers
        assert "Proxy-Authorization" in second.headers
        assert second.cseq.number == first.cseq.number + 1
        assert (first.headers.get("Route") or "").startswith("<sip:127.0.0.1:")
        if script == "answer":
            assert result.early_media and early and early[0].remote_port == 45000
            call = result.call
            assert call is not None and call.media is not None
            await within(callee.acked.wait())
            await call.hang_up("done")
            await within(callee.bye.wait())
        if script == "no_answer":
            assert callee.cancelled.is_set()
