"""SIP flows over real TLS (and TCP) on 127.0.0.1: framing, replies, keep-alive, closing."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from realtime_voice.sip.headers import Headers, SipMessage, SipRequest, SipResponse
from realtime_voice.sip.message import (
    SipLimits,
    SipStreamParser,
    build_response,
    new_branch,
)
from realtime_voice.sip.transport import (
    Backoff,
    FlowClosed,
    SipFlow,
    SipTransportError,
    open_flow,
    serve_flows,
)
from realtime_voice.sip.uri import parse_uri
from realtime_voice.testing.tls_certs import LoopbackCertificates

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def certs() -> LoopbackCertificates:
    return LoopbackCertificates()


def options(body: bytes = b"", call_id: str = "call-1") -> SipRequest:
    headers = Headers([
        ("Via", f"SIP/2.0/TLS 127.0.0.1:5061;branch={new_branch()}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:bot@127.0.0.1>;tag=abc"),
        ("To", "<sip:proxy@127.0.0.1>"),
        ("Call-ID", call_id),
        ("CSeq", "1 OPTIONS"),
    ])
    return SipRequest("OPTIONS", parse_uri("sip:proxy@127.0.0.1"), headers=headers, body=body)


@dataclass
class Accepted:
    """One connection the test server accepted: its flow, what it received, how it ended."""

    flow: SipFlow
    messages: asyncio.Queue[SipMessage] = field(default_factory=asyncio.Queue)
    ended: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class Server:
    server: asyncio.Server
    port: int
    accepted: asyncio.Queue[Accepted]
    every: list[Accepted] = field(default_factory=list)

    async def next(self) -> Accepted:
        return await asyncio.wait_for(self.accepted.get(), TIMEOUT)

    async def stop(self) -> None:
        """Close the listener and every accepted flow; wait for their run() to end."""
        self.server.close()
        for entry in self.every:
            await entry.flow.close("test over")
            await asyncio.wait_for(entry.ended, TIMEOUT)


async def start_server(ssl_context: ssl.SSLContext | None, **flow_kwargs: Any) -> Server:
    accepted: asyncio.Queue[Accepted] = asyncio.Queue()
    every: list[Accepted] = []

    async def on_flow(flow: SipFlow) -> None:
        entry = Accepted(flow)
        accepted.put_nowait(entry)
        every.append(entry)
        entry.ended.set_result(await flow.run(entry.messages.put_nowait))

    server = await serve_flows("127.0.0.1", 0, on_flow, ssl_context=ssl_context, **flow_kwargs)
    return Server(server, server.sockets[0].getsockname()[1], accepted, every)


@pytest.fixture(params=["TLS", "TCP"])
async def server(request: pytest.FixtureRequest,
                 certs: LoopbackCertificates) -> AsyncIterator[tuple[Server, str]]:
    context = certs.server_context() if request.param == "TLS" else None
    srv = await start_server(context)
    yield srv, request.param
    await srv.stop()


class Client:
    """A client flow with its run() task and received messages."""

    def __init__(self, flow: SipFlow) -> None:
        self.flow = flow
        self.messages: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.task = asyncio.ensure_future(flow.run(self.messages.put_nowait))

    async def ended(self) -> str:
        return await asyncio.wait_for(self.task, TIMEOUT)


async def connect(srv: Server, transport: str, certs: LoopbackCertificates,
                  **kwargs: Any) -> Client:
    context = certs.client_context() if transport == "TLS" else None
    return Client(await open_flow("127.0.0.1", srv.port, ssl_context=context, **kwargs))


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition the flow's tasks make true."""
    async def poll() -> None:
        # The flow exposes counters, not events, for what it does on its own (pings).
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), TIMEOUT)


async def raw_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_messages(reader: asyncio.StreamReader, count: int) -> list[SipMessage]:
    parser = SipStreamParser()
    out: list[SipMessage] = []

    async def pump() -> None:
        while len(out) < count:
            data = await reader.read(4096)
            assert data, "connection closed early"
            out.extend(e for e in parser.feed(data) if isinstance(e, SipRequest | SipResponse))
    await asyncio.wait_for(pump(), TIMEOUT)
    return out


# -- round trips -------------------------------------------------------------------------

async def test_messages_go_both_ways(server: tuple[Server, str],
                                     certs: LoopbackCertificates) -> None:
    srv, transport = server
    client = await connect(srv, transport, certs)
    assert client.flow.transport == transport
    assert client.flow.remote_address == ("127.0.0.1", srv.port)
    request = options(body=b"hello")
    client.flow.send(request)
    accepted = await srv.next()
    assert accepted.flow.transport == transport
    assert accepted.flow.remote_address == client.flow.local_address
    received = await asyncio.wait_for(accepted.messages.get(), TIMEOUT)
    assert isinstance(received, SipRequest)
    assert received.method == "OPTIONS" and received.body == b"hello"
    # The server answers on the same connection, and can send its own request on it.
    accepted.flow.send(build_response(received, 200, to_tag="xyz"))
    accepted.flow.send(options(call_id="from-server"))
    response = await asyncio.wait_for(client.messages.get(), TIMEOUT)
    assert isinstance(response, SipResponse) and response.status == 200
    inbound = await asyncio.wait_for(client.messages.get(), TIMEOUT)
    assert isinstance(inbound, SipRequest) and inbound.call_id == "from-server"
    await client.flow.close("done")
    assert await client.ended() == "done"
    assert await asyncio.wait_for(accepted.ended, TIMEOUT) == "peer closed the connection"


async def test_peer_closing_ends_run_with_a_reason(server: tuple[Server, str],
                                                   certs: LoopbackCertificates) -> None:
    srv, transport = server
    client = await connect(srv, transport, certs)
    accepted = await srv.next()
    await accepted.flow.close("server going away")
    assert await client.ended() == "peer closed the connection"
    assert client.flow.is_closed


async def test_send_after_close_raises(server: tuple[Server, str],
                                       certs: LoopbackCertificates) -> None:
    srv, transport = server
    client = await connect(srv, transport, certs)
    await client.flow.close("bye")
    await client.flow.close("again")  # idempotent: the first reason stays
    assert await client.flow.wait_closed() == "bye"
    with pytest.raises(FlowClosed, match="bye"):
        client.flow.send(options())


async def test_handler_exception_does_not_kill_the_flow(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[SipMessage] = []

    def handler(message: SipMessage) -> None:
        seen.append(message)
        if len(seen) == 1:
            raise RuntimeError("boom")

    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    _, peer = await asyncio.open_connection(sock=theirs)
    flow = SipFlow(reader, writer, server=True, name="pair")
    task = asyncio.ensure_future(flow.run(handler))
    peer.write(options(call_id="one").serialize() + options(call_id="two").serialize())
    await until(lambda: len(seen) == 2)
    assert [m.call_id for m in seen] == ["one", "two"]
    assert not flow.is_closed
    assert "handler failed" in caplog.text and "pair" in caplog.text
    peer.close()
    assert await asyncio.wait_for(task, TIMEOUT) == "peer closed the connection"


# -- bad input -----------------------------------------------------------------------------

BAD_CSEQ = (b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/TCP 127.0.0.1:5000;branch=z9hG4bKbad1\r\n"
            b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\n"
            b"Call-ID: bad-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


async def test_malformed_request_gets_400_and_the_flow_stays_up(
        caplog: pytest.LogCaptureFixture) -> None:
    srv = await start_server(None, name="sipp")
    try:
        reader, writer = await raw_connect(srv.port)
        accepted = await srv.next()
        writer.write(BAD_CSEQ)
        [reply] = await read_messages(reader, 1)
        assert isinstance(reply, SipResponse) and reply.status == 400
        assert reply.call_id == "bad-1" and "CSeq method" in reply.reason
        assert "sipp" in caplog.text and "CSeq method" in caplog.text
        # Still up: the next good request arrives.
        writer.write(options(call_id="good").serialize())
        good = await asyncio.wait_for(accepted.messages.get(), TIMEOUT)
        assert good.call_id == "good"
        assert not accepted.flow.is_closed
        writer.close()
        assert await asyncio.wait_for(accepted.ended, TIMEOUT) == "peer closed the connection"
    finally:
        await srv.stop()


async def test_oversized_header_block_closes_the_flow() -> None:
    limits = SipLimits(max_header_bytes=1024, max_body_bytes=1024, max_buffered_bytes=4096)
    srv = await start_server(None, limits=limits)
    try:
        reader, writer = await raw_connect(srv.port)
        accepted = await srv.next()
        writer.write(b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\nX-Long: " + b"a" * 3000)
        reason = await asyncio.wait_for(accepted.ended, TIMEOUT)
        assert reason.startswith("framing error") and "1024" in reason
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed on us
        assert accepted.messages.empty()
        writer.close()
    finally:
        await srv.stop()


async def test_missing_content_length_is_fatal_on_a_stream() -> None:
    srv = await start_server(None)
    try:
        reader, writer = await raw_connect(srv.port)
        accepted = await srv.next()
        writer.write(BAD_CSEQ.replace(b"CSeq: 1 INVITE", b"CSeq: 1 OPTIONS")
                     .replace(b"Content-Length: 0\r\n", b""))
        # Answered (the start line and headers are readable), then closed.
        [reply] = await read_messages(reader, 1)
        assert isinstance(reply, SipResponse) and reply.status == 400
        reason = await asyncio.wait_for(accepted.ended, TIMEOUT)
        assert "Content-Length" in reason
        writer.close()
    finally:
        await srv.stop()


# -- TLS failures ----------------------------------------------------------------------------

async def test_untrusted_certificate_is_refused(certs: LoopbackCertificates) -> None:
    srv = await start_server(certs.server_context())
    stranger = LoopbackCertificates().client_context()  # trusts another CA
    try:
        with pytest.raises(SipTransportError, match="certificate verify failed"):
            await open_flow("127.0.0.1", srv.port, ssl_context=stranger)
    finally:
        await srv.stop()


async def test_hostname_mismatch_is_refused(certs: LoopbackCertificates) -> None:
    srv = await start_server(certs.server_context())
    try:
        with pytest.raises(SipTransportError, match="certificate verify failed") as caught:
            await open_flow("127.0.0.1", srv.port, ssl_context=certs.client_context(),
                            server_hostname="sip20.ringcentral.com")
        assert "sip20.ringcentral.com" in str(caught.value) or "ostname" in str(caught.value)
    finally:
        await srv.stop()


async def test_connection_refused_is_named() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SipTransportError, match="refused"):
        await open_flow("127.0.0.1", port, ssl_context=None)


async def test_handshake_timeout_is_named(certs: LoopbackCertificates) -> None:
    # A TCP listener that never speaks TLS: the handshake cannot finish.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(SipTransportError, match="timeout"):
            await open_flow("127.0.0.1", srv.sockets[0].getsockname()[1],
                            ssl_context=certs.client_context(), connect_timeout_s=0.1)
    finally:
        srv.close()


# -- keep-alive ------------------------------------------------------------------------------

async def test_client_ping_gets_a_pong(server: tuple[Server, str],
                                       certs: LoopbackCertificates) -> None:
    srv, transport = server
    client = await connect(srv, transport, certs, keepalive_interval_s=0.01,
                           pong_timeout_s=TIMEOUT)
    await until(lambda: client.flow.pongs_received >= 3)
    assert client.flow.pings_sent >= 3
    assert not client.flow.is_closed
    accepted = await srv.next()
    assert accepted.messages.empty()  # pings are not messages
    await client.flow.close()


async def test_no_pong_closes_the_flow(certs: LoopbackCertificates) -> None:
    received = bytearray()

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            received.extend(data)
        writer.close()

    for context in (certs.server_context(), None):
        received.clear()
        srv = await asyncio.start_server(deaf, "127.0.0.1", 0, ssl=context)
        try:
            flow = await open_flow("127.0.0.1", srv.sockets[0].getsockname()[1],
                                   ssl_context=certs.client_context() if context else None,
                                   keepalive_interval_s=0.01, pong_timeout_s=0.05)
            client = Client(flow)
            assert await client.ended() == "keep-alive pong timeout"
            assert bytes(received).startswith(b"\r\n\r\n")
        finally:
            srv.close()


# -- bounds ----------------------------------------------------------------------------------

async def test_write_queue_overflow_closes_the_flow(server: tuple[Server, str],
                                                    certs: LoopbackCertificates) -> None:
    srv, transport = server
    client = await connect(srv, transport, certs, max_write_buffer=5000)
    big = options(body=b"x" * 1000)
    with pytest.raises(FlowClosed, match="write queue overflow"):
        for _ in range(10):  # a burst with no chance to write: the queue alone fills
            client.flow.send(big)
    assert client.flow.close_reason == "write queue overflow"
    assert await client.ended() == "write queue overflow"
    with pytest.raises(FlowClosed):
        client.flow.send(options())


async def test_serve_flows_refuses_beyond_max_flows() -> None:
    srv = await start_server(None, max_flows=1)
    try:
        first = await open_flow("127.0.0.1", srv.port, ssl_context=None)
        accepted = await srv.next()
        second = Client(await open_flow("127.0.0.1", srv.port, ssl_context=None))
        assert await second.ended() in ("peer closed the connection",
                                        "read error: [Errno 104] Connection reset by peer")
        await first.close()
        assert await asyncio.wait_for(accepted.ended, TIMEOUT) == "peer closed the connection"
    finally:
        await srv.stop()


# -- backoff ---------------------------------------------------------------------------------

def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(1.0, 10.0, random=lambda: 0.5)  # 0.5: no jitter
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_jitter_stays_in_bounds() -> None:
    low = Backoff(1.0, 10.0, jitter=0.2, random=lambda: 0.0)
    high = Backoff(1.0, 10.0, jitter=0.2, random=lambda: 1.0)
    assert [round(low.next_delay(), 6) for _ in range(5)] == [0.8, 1.6, 3.2, 6.4, 8.0]
    assert [round(high.next_delay(), 6) for _ in range(5)] == [1.2, 2.4, 4.8, 9.6, 10.0]


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0)
    with pytest.raises(ValueError):
        Backoff(5.0, 1.0)

