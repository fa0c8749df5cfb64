"""The fake RingCentral SIP edge, driven by a raw TLS SIP client written here.

The client is deliberately small and independent of the production UA: asyncio streams,
`SipStreamParser`, `DigestClient`, and hand-built messages shaped like RingCentral's
SDK's (docs/RINGCENTRAL_SIP.md §3). It trusts `LoopbackCertificates`' CA, hostname
checks on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import cast

import pytest

from realtime_voice.sip import sdp
from realtime_voice.sip.auth import DigestClient, choose_challenge
from realtime_voice.sip.headers import Headers, SipRequest, SipResponse
from realtime_voice.sip.message import (
    KEEPALIVE_PING,
    KeepAlivePong,
    SipStreamParser,
    build_response,
    new_branch,
    new_call_id,
    new_tag,
)
from realtime_voice.sip.uri import parse_uri
from realtime_voice.testing.sip_edge import SIPFRAG_OK, EdgeKnobs, FakeRingCentralEdge
from realtime_voice.testing.tls_certs import LoopbackCertificates

REALM = "sip.ringcentral.com"
USER = "16505550123"  # the RingCentral username (AOR user)
AUTH_ID = "802123456789"  # the authorization ID (digest username)
PASSWORD = "s3cret-pass"
CALLER = "caller"
CALLER_PASSWORD = "caller-pass"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def certs() -> LoopbackCertificates:
    return LoopbackCertificates()


@contextlib.asynccontextmanager
async def running_edge(certs: LoopbackCertificates, knobs: EdgeKnobs | None = None
                       ) -> AsyncIterator[FakeRingCentralEdge]:
    edge = FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD, CALLER: CALLER_PASSWORD},
                               knobs=knobs, ssl_context=certs.server_context())
    async with edge:
        yield edge


def offer_sdp(port: int, *, key: bytes | None = None, version: int = 1) -> bytes:
    """A RingCentral-like SDES offer (Opus 16 k, Opus 48 k, PCMU, telephone-event)."""
    inline = base64.b64encode(key or secrets.token_bytes(30)).decode()
    return (
        f"v=0\r\no=- 42 {version} IN IP4 127.0.0.1\r\ns=rc-softphone-ts\r\n"
        f"c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/SAVP 109 111 0 101\r\n"
        "a=rtpmap:109 OPUS/16000\r\na=rtpmap:111 OPUS/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\n"
    ).encode()


@dataclass
class RawClient:
    """A bare SIP-over-TLS client: send messages, await what arrives."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    user: str = USER
    requests: asyncio.Queue[SipRequest] = field(
        default_factory=lambda: asyncio.Queue(maxsize=256))
    responses: asyncio.Queue[SipResponse] = field(
        default_factory=lambda: asyncio.Queue(maxsize=256))
    pongs: asyncio.Queue[KeepAlivePong] = field(
        default_factory=lambda: asyncio.Queue(maxsize=16))
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    instance: str = field(default_factory=lambda: f"<urn:uuid:{secrets.token_hex(16)}>")
    call_id: str = field(default_factory=new_call_id)
    cseq: int = 0
    task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, edge: FakeRingCentralEdge, certs: LoopbackCertificates,
                      user: str = USER) -> RawClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", edge.port, ssl=certs.client_context(), server_hostname="127.0.0.1")
        client = cls(reader, writer, user=user)
        client.task = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        parser = SipStreamParser()
        try:
            while data := await self.reader.read(65536):
                for event in parser.feed(data):
                    if isinstance(event, SipRequest):
                        self.requests.put_nowait(event)
                    elif isinstance(event, SipResponse):
                        self.responses.put_nowait(event)
                    elif isinstance(event, KeepAlivePong):
                        self.pongs.put_nowait(event)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def contact_uri(self) -> str:
        host, port = self.local
        return f"sip:{self.user}@{host}:{port};transport=TLS;ob"

    def via(self) -> str:
        host, port = self.local
        return f"SIP/2.0/TLS {host}:{port};rport;branch={new_branch()};alias"

    def send(self, message: SipRequest | SipResponse | bytes) -> None:
        self.writer.write(message if isinstance(message, bytes) else message.serialize())

    async def request(self, method: str | None = None) -> SipRequest:
        request = await asyncio.wait_for(self.requests.get(), TIMEOUT)
        if method is not None:
            assert request.method == method, f"expected {method}, got {request.method}"
        return request

    async def response(self) -> SipResponse:
        return await asyncio.wait_for(self.responses.get(), TIMEOUT)

    async def final_response(self) -> SipResponse:
        while (response := await self.response()).status < 200:
            pass
        return response

    def register_request(self, *, expires: int = 3600,
                         authorization: str | None = None) -> SipRequest:
        """A REGISTER shaped like RingCentral's SDK's."""
        self.cseq += 1
        headers = Headers([
            ("Via", self.via()), ("Max-Forwards", "70"),
            ("From", f"<sip:{self.user}@{REALM}>;tag={new_tag()}"),
            ("To", f"<sip:{self.user}@{REALM}>"), ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", f'<{self.contact_uri}>;reg-id=1;+sip.instance="{self.instance}"'),
            ("Expires", str(expires)), ("Allow", "INVITE, ACK, CANCEL, BYE, REFER, NOTIFY"),
            ("User-Agent", "raw-test-client"),
        ])
        if authorization is not None:
            headers.add("Authorization", authorization)
        return SipRequest("REGISTER", parse_uri(f"sip:{REALM}"), headers=headers)

    async def register(self, *, auth_id: str = AUTH_ID, password: str = PASSWORD,
                       expires: int = 3600) -> list[SipResponse]:
        """REGISTER, answering up to three 401s; every response, in order."""
        digest = DigestClient(auth_id, password)
        self.send(self.register_request(expires=expires))
        answers = [await self.final_response()]
        while answers[-1].status == 401 and len(answers) < 4:
            challenge = choose_challenge(answers[-1].headers.get_all("WWW-Authenticate"))
            authorization = digest.authorization(challenge, "REGISTER", f"sip:{REALM}")
            self.send(self.register_request(expires=expires, authorization=authorization))
            answers.append(await self.final_response())
        return answers

    def respond(self, request: SipRequest, status: int, *, to_tag: str | None = None,
                body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> None:
        fields = list(headers)
        if status < 300 and request.method in ("INVITE", "UPDATE"):
            fields.append(("Contact", f"<{self.contact_uri}>"))
        if body:
            fields.append(("Content-Type", "application/sdp"))
        self.send(build_response(request, status, to_tag=to_tag, headers=fields, body=body))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@contextlib.asynccontextmanager
async def client_of(edge: FakeRingCentralEdge, certs: LoopbackCertificates,
                    user: str = USER) -> AsyncIterator[RawClient]:
    client = await RawClient.connect(edge, certs, user)
    try:
        yield client
    finally:
        await client.close()


def in_dialog(request: SipRequest, method: str, *, local_tag: str, cseq: int,
              via: str, body: bytes = b"",
              headers: Iterable[tuple[str, str]] = ()) -> SipRequest:
    """A request from the device in the dialog ``request`` (the edge's INVITE) made."""
    contact = request.contacts[0].uri
    fields = Headers([
        ("Via", via), ("Max-Forwards", "70"),
        ("From", f"{request.headers.get('To')};tag={local_tag}"),
        ("To", request.headers.get("From") or ""), ("Call-ID", request.call_id),
        ("CSeq", f"{cseq} {method}"), *headers,
    ])
    if body:
        fields.add("Content-Type", "application/sdp")
    return SipRequest(method, contact, headers=fields, body=body)


class Datagrams(asyncio.DatagramProtocol):
    """A UDP socket that queues what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue(64)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait((data, (str(addr[0]), int(addr[1]))))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def next(self) -> bytes:
        data, _ = await asyncio.wait_for(self.received.get(), TIMEOUT)
        return data


@contextlib.asynccontextmanager
async def udp_socket() -> AsyncIterator[Datagrams]:
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Datagrams, local_addr=("127.0.0.1", 0))
    try:
        yield protocol
    finally:
        assert protocol.transport is not None
        protocol.transport.close()


def audio_port(body: bytes) -> int:
    return sdp.parse(body).media[0].port


# --- registration ----------------------------------------------------------------------


async def test_register_md5_without_qop_like_ringcentral_sdk(
        certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as client:
        answers = await client.register()
        assert [a.status for a in answers] == [401, 200]
        challenge = choose_challenge(answers[0].headers.get_all("WWW-Authenticate"))
        assert (challenge.realm, challenge.algorithm, challenge.qop) == (REALM, "MD5", ())
        assert answers[1].expires == 3600
        assert answers[1].contacts[0].params["expires"] == "3600"

        binding = await edge.wait_registered(USER)
        assert str(binding.uri) == client.contact_uri
        assert binding.instance == client.instance and binding.reg_id == "1"
        first, second = edge.registrations
        assert (first.status, first.authorization) == (401, None)
        assert second.status == 200 and second.granted == 3600
        assert second.contact_transport == "TLS" and second.contact_ob
        assert second.reg_id == "1" and second.instance == client.instance
        assert second.expires == 3600
        assert second.authorization is not None
        assert second.authorization["username"] == AUTH_ID
        assert second.authorization["uri"] == f"sip:{REALM}"
        assert second.authorization["qop"] is None


@pytest.mark.parametrize(("qop", "algorithm"), [("auth", "MD5"), (None, "SHA-256"),
                                                ("auth", "SHA-256")])
async def test_register_other_digest_styles(certs: LoopbackCertificates, qop: str | None,
                                            algorithm: str) -> None:
    knobs = EdgeKnobs(qop=qop, algorithm=algorithm)
    async with running_edge(certs, knobs) as edge, client_of(edge, certs) as client:
        answers = await client.register()
        assert [a.status for a in answers] == [401, 200]
        challenge = choose_challenge(answers[0].headers.get_all("WWW-Authenticate"))
        assert challenge.algorithm == algorithm
        assert challenge.qop == ((qop,) if qop else ())
        authorization = edge.registrations[-1].authorization
        assert authorization is not None
        assert authorization["qop"] == qop and authorization["algorithm"] == algorithm
        assert authorization["nc"] == ("00000001" if qop else None)


async def test_stale_once_gives_a_second_challenge(certs: LoopbackCertificates) -> None:
    async with running_edge(certs, EdgeKnobs(stale_once=True)) as edge, \
            client_of(edge, certs) as client:
        answers = await client.register()
        assert [a.status for a in answers] == [401, 401, 200]
        first, stale = (choose_challenge(a.headers.get_all("WWW-Authenticate"))
                        for a in answers[:2])
        assert not first.stale and stale.stale
        assert [r.stale for r in edge.registrations] == [False, True, False]
        # Only once: a refresh is challenged and accepted without a stale round.
        assert [a.status for a in await client.register()] == [401, 200]


async def test_wrong_password_and_forbid_are_403(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as client:
        assert [a.status for a in await client.register(password="nope")] == [401, 403]
        assert [a.status for a in await client.register(auth_id="unknown")] == [401, 403]
        assert USER not in edge.bindings
    async with running_edge(certs, EdgeKnobs(forbid=True)) as edge, \
            client_of(edge, certs) as client:
        assert [a.status for a in await client.register()] == [403]


async def test_granted_expires_and_deregistration(certs: LoopbackCertificates) -> None:
    async with running_edge(certs, EdgeKnobs(granted_expires=5)) as edge, \
            client_of(edge, certs) as client:
        answers = await client.register(expires=3600)
        assert answers[-1].expires == 5
        assert answers[-1].contacts[0].params["expires"] == "5"
        assert (await edge.wait_registered(USER)).expires == 5
        assert [a.status for a in await client.register(expires=0)] == [401, 200]
        assert USER not in edge.bindings


async def test_drop_after_register_closes_the_connection(
        certs: LoopbackCertificates) -> None:
    async with running_edge(certs, EdgeKnobs(drop_after_register=True)) as edge, \
            client_of(edge, certs) as client:
        assert [a.status for a in await client.register()] == [401, 200]
        await asyncio.wait_for(client.closed.wait(), TIMEOUT)


async def test_drop_flow_and_latest_registration_wins(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as first:
        await first.register()
        old = await edge.wait_registered(USER)
        edge.drop_flow(USER)
        await asyncio.wait_for(first.closed.wait(), TIMEOUT)
        with pytest.raises(LookupError):
            await edge.invite(USER, offer=None)
        async with client_of(edge, certs) as second:
            await second.register()
            new = await edge.wait_registered(USER, newer_than=old)
            assert new.instance == second.instance
            call = await edge.invite(USER, offer=offer_sdp(40000))
            invite = await second.request("INVITE")
            assert invite.call_id == call.call_id


async def test_keepalive_ping_gets_a_pong_and_options_200(
        certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as client:
        client.send(KEEPALIVE_PING)
        await asyncio.wait_for(client.pongs.get(), TIMEOUT)
        options = SipRequest("OPTIONS", parse_uri(f"sip:{REALM}"), headers=Headers([
            ("Via", client.via()), ("Max-Forwards", "70"),
            ("From", f"<sip:{USER}@{REALM}>;tag={new_tag()}"), ("To", f"<sip:{REALM}>"),
            ("Call-ID", new_call_id()), ("CSeq", "1 OPTIONS")]))
        client.send(options)
        assert (await client.response()).status == 200
        stray = SipRequest("BYE", parse_uri(f"sip:{REALM}"), headers=Headers([
            ("Via", client.via()), ("Max-Forwards", "70"),
            ("From", f"<sip:{USER}@{REALM}>;tag={new_tag()}"),
            ("To", f"<sip:{REALM}>;tag={new_tag()}"),
            ("Call-ID", new_call_id()), ("CSeq", "1 BYE")]))
        client.send(stray)
        assert (await client.response()).status == 481


# --- scripted calls --------------------------------------------------------------------


async def registered(edge: FakeRingCentralEdge, client: RawClient) -> None:
    assert (await client.register())[-1].status == 200
    await edge.wait_registered(client.user)


async def test_invite_answer_ack_reinvite_update_info_bye(
        certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device:
        await registered(edge, device)
        offer = offer_sdp(40000)
        call = await edge.invite(USER, offer=offer, from_number="+15550199")
        invite = await device.request("INVITE")
        assert str(invite.uri) == device.contact_uri
        assert invite.headers.get("Alert-Info") == "Auto Answer"
        assert "answer-after=0" in (invite.headers.get("Call-Info") or "")
        assert invite.headers.get("Content-Type") == "application/sdp"
        assert invite.body == offer
        assert str(invite.from_.uri) == f"sip:+15550199@{REALM}"
        assert invite.via[0].transport == "TLS"

        tag = new_tag()
        device.respond(invite, 100)
        answer = offer_sdp(41000)
        device.respond(invite, 200, to_tag=tag, body=answer)
        assert (await call.wait_final()).status == 200
        await call.ack()
        ack = await device.request("ACK")
        assert ack.cseq.number == invite.cseq.number and ack.to.tag == tag
        assert str(ack.uri) == device.contact_uri
        assert call.state == "confirmed" and call.remote_sdp == answer

        rekey = offer_sdp(40000, version=2)
        reinvite_task = asyncio.create_task(call.reinvite(rekey))
        reinvite = await device.request("INVITE")
        assert reinvite.to.tag == tag and reinvite.cseq.number == invite.cseq.number + 1
        assert reinvite.body == rekey
        device.respond(reinvite, 200, to_tag=tag, body=answer)
        assert (await reinvite_task).status == 200
        assert (await device.request("ACK")).cseq.number == reinvite.cseq.number

        update_task = asyncio.create_task(call.update(None))
        update = await device.request("UPDATE")
        assert update.body == b""
        device.respond(update, 200)
        assert (await update_task).status == 200

        info_task = asyncio.create_task(call.request("INFO", b"<Msg/>", "application/xml"))
        info = await device.request("INFO")
        device.respond(info, 200)
        assert (await info_task).status == 200

        bye_task = asyncio.create_task(call.bye())
        bye = await device.request("BYE")
        device.respond(bye, 200)
        assert (await bye_task).status == 200
        assert edge.calls[-1] is call and edge.calls[-1].state == "terminated"


async def test_delayed_offer_puts_the_answer_in_the_ack(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device:
        await registered(edge, device)
        call = await edge.invite(USER, offer=None)
        invite = await device.request("INVITE")
        assert invite.body == b"" and invite.headers.get("Content-Type") is None
        device_offer = offer_sdp(41000)
        device.respond(invite, 200, to_tag=new_tag(), body=device_offer)
        final = await call.wait_final()
        assert final.body == device_offer
        answer = offer_sdp(40000)
        await call.ack(answer)
        ack = await device.request("ACK")
        assert ack.body == answer and ack.headers.get("Content-Type") == "application/sdp"


async def test_cancel_before_answer(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device:
        await registered(edge, device)
        call = await edge.invite(USER, offer=offer_sdp(40000), auto_answer=False)
        invite = await device.request("INVITE")
        assert invite.headers.get("Alert-Info") is None
        tag = new_tag()
        device.respond(invite, 180, to_tag=tag)
        cancel_task = asyncio.create_task(call.cancel())
        cancel = await device.request("CANCEL")
        assert cancel.via[0].branch == invite.via[0].branch
        assert cancel.cseq.number == invite.cseq.number
        device.respond(cancel, 200, to_tag=tag)
        device.respond(invite, 487, to_tag=tag)
        assert (await cancel_task).status == 200
        assert (await call.wait_final()).status == 487
        ack = await device.request("ACK")  # the edge ACKs the 487, same transaction
        assert ack.via[0].branch == invite.via[0].branch and ack.to.tag == tag
        assert call.state == "terminated"
        assert [r.status for r in call.responses] == [180, 487]


async def answered_call(edge: FakeRingCentralEdge, device: RawClient
                        ) -> tuple[SipRequest, str]:
    """Push a call, answer it, take the ACK: the INVITE and the device's tag."""
    call = await edge.invite(USER, offer=offer_sdp(40000))
    invite = await device.request("INVITE")
    tag = new_tag()
    device.respond(invite, 200, to_tag=tag, body=offer_sdp(41000))
    await call.ack()
    await device.request("ACK")
    return invite, tag


async def test_refer_gets_202_then_notify_sipfrag(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device:
        await registered(edge, device)
        invite, tag = await answered_call(edge, device)
        call = edge.calls[-1]
        target = f"sip:+15550142@{REALM}"
        device.send(in_dialog(invite, "REFER", local_tag=tag, cseq=1, via=device.via(),
                              headers=[("Refer-To", target),
                                       ("Referred-By", f"<sip:{USER}@{REALM}>"),
                                       ("Event", "refer"),
                                       ("Accept", "message/sipfrag;version=2.0")]))
        assert (await device.response()).status == 202
        notify = await device.request("NOTIFY")
        assert notify.headers.get("Event") == "refer"
        assert notify.headers.get("Subscription-State") == "terminated;reason=noresource"
        assert notify.headers.get("Content-Type") == "message/sipfrag;version=2.0"
        assert notify.body == SIPFRAG_OK == b"SIP/2.0 200 OK"
        assert notify.to.tag == tag
        device.respond(notify, 200)
        refer = await call.wait_refer()
        assert refer.headers.get("Refer-To") == target and call.refer_to == [target]
        assert (await call.notify_transactions[0].wait_final()).status == 200

        device.send(in_dialog(invite, "BYE", local_tag=tag, cseq=2, via=device.via()))
        assert (await device.response()).status == 200
        await call.wait_bye()
        assert call.state == "terminated"


async def test_device_requests_in_and_out_of_dialog(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device:
        await registered(edge, device)
        invite, tag = await answered_call(edge, device)
        device.send(in_dialog(invite, "OPTIONS", local_tag=tag, cseq=1, via=device.via()))
        assert (await device.response()).status == 200
        hold = offer_sdp(41000, version=2).replace(b"a=sendrecv", b"a=sendonly")
        device.send(in_dialog(invite, "INVITE", local_tag=tag, cseq=2, via=device.via(),
                              body=hold))
        ok = await device.response()
        assert ok.status == 200 and ok.body == invite.body  # the edge's media unchanged
        assert edge.calls[-1].remote_sdp == hold
        wrong_tag = in_dialog(invite, "BYE", local_tag=new_tag(), cseq=3, via=device.via())
        device.send(wrong_tag)
        assert (await device.response()).status == 481


# --- B2BUA -----------------------------------------------------------------------------


def caller_invite(caller: RawClient, edge: FakeRingCentralEdge, body: bytes,
                  target: str = USER) -> SipRequest:
    caller.cseq += 1
    host, port = caller.local
    return SipRequest("INVITE", parse_uri(f"sip:{target}@127.0.0.1:{edge.port};transport=tls"),
                      headers=Headers([
                          ("Via", caller.via()), ("Max-Forwards", "70"),
                          ("From", f"<sip:{CALLER}@127.0.0.1>;tag={new_tag()}"),
                          ("To", f"<sip:{target}@127.0.0.1>"), ("Call-ID", new_call_id()),
                          ("CSeq", f"{caller.cseq} INVITE"),
                          ("Contact", f"<sip:{CALLER}@{host}:{port};transport=tls>"),
                          ("Content-Type", "application/sdp")]), body=body)


def caller_in_dialog(caller: RawClient, invite: SipRequest, ok: SipResponse, method: str,
                     cseq: int) -> SipRequest:
    return SipRequest(method, ok.contacts[0].uri, headers=Headers([
        ("Via", caller.via()), ("Max-Forwards", "70"), ("From", invite.headers.get("From") or ""),
        ("To", ok.headers.get("To") or ""), ("Call-ID", invite.call_id),
        ("CSeq", f"{cseq} {method}")]))


async def test_b2bua_bridges_signalling_and_media(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device, \
            client_of(edge, certs, CALLER) as caller, udp_socket() as caller_rtp, \
            udp_socket() as device_rtp:
        await registered(edge, device)
        assert (await caller.register(auth_id=CALLER, password=CALLER_PASSWORD))[-1].status == 200
        key = secrets.token_bytes(30)
        invite = caller_invite(caller, edge, offer_sdp(caller_rtp.port, key=key))
        caller.send(invite)
        assert (await caller.response()).status == 100

        bridged = await device.request("INVITE")
        assert bridged.call_id != invite.call_id
        assert bridged.headers.get("Alert-Info") == "Auto Answer"
        assert str(bridged.uri) == device.contact_uri
        device_view = sdp.parse(bridged.body)
        relay = edge.bridges[-1].relay
        assert relay is not None
        assert device_view.connection is not None
        assert device_view.connection.address == "127.0.0.1"
        assert device_view.media[0].port == relay.port("device") != caller_rtp.port
        assert device_view.media[0].crypto[0].keys[0].key_salt == key  # SDES end to end

        device_key = secrets.token_bytes(30)
        device.respond(bridged, 200, to_tag=new_tag(),
                       body=offer_sdp(device_rtp.port, key=device_key))
        ok = await caller.final_response()
        assert ok.status == 200 and ok.to.tag is not None
        assert audio_port(ok.body) == relay.port("caller") != device_rtp.port
        assert sdp.parse(ok.body).media[0].crypto[0].keys[0].key_salt == device_key

        ack = caller_in_dialog(caller, invite, ok, "ACK", invite.cseq.number)
        caller.send(ack)
        assert (await device.request("ACK")).cseq.number == bridged.cseq.number

        assert caller_rtp.transport is not None and device_rtp.transport is not None
        for n in range(3):
            caller_rtp.transport.sendto(b"caller-%d" % n, ("127.0.0.1", relay.port("caller")))
            assert await device_rtp.next() == b"caller-%d" % n
            device_rtp.transport.sendto(b"device-%d" % n, ("127.0.0.1", relay.port("device")))
            assert await caller_rtp.next() == b"device-%d" % n
        assert relay.counters.caller_to_device == 3 and relay.counters.device_to_caller == 3

        caller.send(caller_in_dialog(caller, invite, ok, "BYE", invite.cseq.number + 1))
        assert (await caller.response()).status == 200
        bye = await device.request("BYE")
        assert bye.call_id == bridged.call_id
        device.respond(bye, 200)
        await edge.bridges[-1].wait_done()


async def test_b2bua_transfer_by_refer_hangs_up_both(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device, \
            client_of(edge, certs, CALLER) as caller:
        await registered(edge, device)
        invite = caller_invite(caller, edge, offer_sdp(45000))
        caller.send(invite)
        bridged = await device.request("INVITE")
        tag = new_tag()
        device.respond(bridged, 200, to_tag=tag, body=offer_sdp(46000))
        ok = await caller.final_response()
        caller.send(caller_in_dialog(caller, invite, ok, "ACK", invite.cseq.number))
        await device.request("ACK")

        target = f"sip:+15550142@{REALM}"
        device.send(in_dialog(bridged, "REFER", local_tag=tag, cseq=1, via=device.via(),
                              headers=[("Refer-To", target), ("Event", "refer")]))
        assert (await device.response()).status == 202
        notify = await device.request("NOTIFY")
        assert notify.body == SIPFRAG_OK
        device.respond(notify, 200)
        device_bye = await device.request("BYE")
        device.respond(device_bye, 200)
        caller_bye = await caller.request("BYE")
        assert caller_bye.call_id == invite.call_id and caller_bye.from_.tag == ok.to.tag
        caller.respond(caller_bye, 200)
        bridge = edge.bridges[-1]
        await bridge.wait_done()
        assert bridge.transfers == [target]


async def test_b2bua_caller_cancel_and_unknown_user(certs: LoopbackCertificates) -> None:
    async with running_edge(certs) as edge, client_of(edge, certs) as device, \
            client_of(edge, certs, CALLER) as caller:
        caller.send(caller_invite(caller, edge, offer_sdp(45000), target="nobody"))
        assert (await caller.final_response()).status == 404

        await registered(edge, device)
        invite = caller_invite(caller, edge, offer_sdp(45000))
        caller.send(invite)
        bridged = await device.request("INVITE")
        tag = new_tag()
        device.respond(bridged, 180, to_tag=tag)
        assert (await caller.response()).status == 100
        assert (await caller.response()).status == 180
        cancel = SipRequest("CANCEL", invite.uri, headers=Headers([
            ("Via", invite.headers.values("Via")[0]), ("Max-Forwards", "70"),
            ("From", invite.headers.get("From") or ""), ("To", invite.headers.get("To") or ""),
            ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.number} CANCEL")]))
        caller.send(cancel)
        responses = {(await caller.response()).status for _ in range(2)}
        assert responses == {200, 487}
        device_cancel = await device.request("CANCEL")
        device.respond(device_cancel, 200, to_tag=tag)
        device.respond(bridged, 487, to_tag=tag)
        assert (await device.request("ACK")).via[0].branch == bridged.via[0].branch
        await edge.bridges[-1].wait_done()
