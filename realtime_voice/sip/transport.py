"""SIP over a reliable stream (TLS to RingCentral's outbound proxy, TCP for SIPp tests).

A `SipFlow` is one connection, client or server side: `send` queues a message (never
blocks; a bounded queue drained by a background writer), `run` reads, frames with
`SipStreamParser` and hands each message to a callback until the connection ends.
RingCentral sends its requests (INVITE, BYE, NOTIFY...) over the flow we registered on,
so the same flow carries both directions (docs/RINGCENTRAL_SIP.md §3).

RFC 5626 §4.4.1 keep-alive: a client flow with ``keepalive_interval_s`` sends a CRLFCRLF
ping that often and closes the flow when no CRLF pong follows within
``pong_timeout_s``; either side answers a ping with a pong.

`open_flow` connects (certificate verified by the caller's `ssl.SSLContext`; never
unverified), `serve_flows` accepts, and `Backoff` spaces out reconnect attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from realtime_voice.sip.headers import SipMessage, SipRequest, SipResponse
from realtime_voice.sip.message import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    InvalidMessage,
    KeepAlivePing,
    KeepAlivePong,
    SipLimits,
    SipStreamParser,
    StreamEvent,
    bad_request_response,
)
from realtime_voice.sip.uri import SipParseError

__all__ = [
    "Backoff",
    "FlowClosed",
    "SipFlow",
    "SipTransportError",
    "open_flow",
    "serve_flows",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
_FLUSH_TIMEOUT_S = 1.0  # close(): how long queued bytes may take to leave
_CLOSE_TIMEOUT_S = 1.0  # close(): how long the TLS close_notify exchange may take


class SipTransportError(Exception):
    """A connection could not be made or used; the message names the problem."""


class FlowClosed(SipTransportError):
    """The flow is closed (sending on it, or a transaction that was pending on it)."""


def _address(value: Any) -> tuple[str, int]:
    """``(host, port)`` from a ``sockname``/``peername`` (IPv6 has four elements)."""
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return "", 0


class SipFlow:
    """One reliable SIP connection (client or server side).

    Args:
        reader: the connection's stream reader.
        writer: its stream writer.
        server: the accepting side (the parser then waits to tell a ping from a pong).
        limits: size limits for what the peer sends.
        keepalive_interval_s: send a CRLFCRLF ping this often (None: never).
        pong_timeout_s: no pong this long after a ping closes the flow.
        max_write_buffer: bytes queued but not yet written; beyond, the flow closes
            (a peer that stops reading must not make us buffer without end).
        name: a label for the log lines (e.g. the proxy's ``host:port``).

    Attributes:
        transport: ``"TLS"`` or ``"TCP"``.
        local_address: our ``(host, port)``.
        remote_address: the peer's ``(host, port)``.
        close_reason: why the flow closed, or None while open.
        pings_sent: keep-alive pings sent (client side).
        pongs_received: keep-alive pongs (single CRLFs) received.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 server: bool, limits: SipLimits | None = None,
                 keepalive_interval_s: float | None = None, pong_timeout_s: float = 10.0,
                 max_write_buffer: int = 1_000_000, name: str = "") -> None:
        self._reader = reader
        self._writer = writer
        self.server = server
        self._limits = limits or SipLimits()
        self._keepalive_interval_s = keepalive_interval_s
        self._pong_timeout_s = pong_timeout_s
        self._max_write_buffer = max_write_buffer
        self.transport = "TLS" if writer.get_extra_info("ssl_object") is not None else "TCP"
        self.local_address = _address(writer.get_extra_info("sockname"))
        self.remote_address = _address(writer.get_extra_info("peername"))
        self.name = name or f"{self.remote_address[0]}:{self.remote_address[1]}"
        self.close_reason: str | None = None
        self.pings_sent = 0
        self.pongs_received = 0
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pong = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = asyncio.create_task(
            self._write_loop(), name=f"sip-flow-writer-{self.name}")
        self._keepalive_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    @property
    def is_closed(self) -> bool:
        """Whether the flow is closed or closing (nothing more can be sent)."""
        return self.close_reason is not None

    def __repr__(self) -> str:
        return f"<SipFlow {self.name} {self.transport} {self.close_reason or 'open'}>"

    # -- sending ----------------------------------------------------------------------

    def send(self, message: SipMessage) -> None:
        """Queue ``message`` for the background writer; never blocks.

        Raises:
            FlowClosed: the flow is closed, or this message overflowed the write queue
                (the flow is closed then).
        """
        self._send_bytes(message.serialize())

    def _send_bytes(self, data: bytes) -> None:
        if self.close_reason is not None:
            raise FlowClosed(f"flow {self.name} is closed: {self.close_reason}")
        transport = self._writer.transport
        backlog = self._queued + transport.get_write_buffer_size()
        if backlog + len(data) > self._max_write_buffer:
            log.warning("SIP flow %s: write queue over %d bytes; closing", self.name,
                        self._max_write_buffer)
            self._begin_close("write queue overflow", flush=False)
            raise FlowClosed(f"flow {self.name} is closed: write queue overflow")
        self._queue.append(data)
        self._queued += len(data)
        self._wake.set()

    async def _write_loop(self) -> None:
        """Write what `send` queued, waiting for the transport to drain between batches."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    chunks = list(self._queue)
                    self._queue.clear()
                    self._queued = 0
                    self._writer.write(b"".join(chunks))
                    await self._writer.drain()
                if self.close_reason is not None:
                    return  # everything queued before the close is written
        except (ConnectionError, OSError, RuntimeError) as exc:
            # RuntimeError: writing to a transport that is already closing.
            if self.close_reason is None:
                log.info("SIP flow %s: write failed: %s", self.name, exc)
            self._begin_close(f"write error: {exc}", flush=False)

    # -- reading ----------------------------------------------------------------------

    async def run(self, on_message: Callable[[SipMessage], None]) -> str:
        """Read until the peer closes, an error, or `close`; return the close reason.

        Each message goes to ``on_message`` (its exceptions are logged, not fatal). A
        broken request that can be answered gets its 400 (505, 513); a fatal framing
        error closes the flow after that reply.
        """
        parser = SipStreamParser(self._limits, server=self.server)
        if self._keepalive_interval_s is not None and self._keepalive_task is None:
            self._keepalive_task = asyncio.create_task(
                self._keepalive(self._keepalive_interval_s),
                name=f"sip-flow-keepalive-{self.name}")
        while self.close_reason is None:
            read: asyncio.Future[bytes] = asyncio.ensure_future(self._reader.read(_READ_CHUNK))
            waiters: set[asyncio.Future[Any]] = {read, self._closing}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not read.done():
                    read.cancel()
            if not read.done() or read.cancelled():
                break  # closed meanwhile
            try:
                data = read.result()
            except (ConnectionError, OSError) as exc:
                self._begin_close(f"read error: {exc}", flush=False)
                break
            if not data:
                self._begin_close("peer closed the connection", flush=False)
                break
            for event in parser.feed(data):
                self._handle(event, on_message)
                if self.close_reason is not None:
                    break
        return await self.wait_closed()

    def _handle(self, event: StreamEvent, on_message: Callable[[SipMessage], None]) -> None:
        if isinstance(event, KeepAlivePing):
            with contextlib.suppress(FlowClosed):
                self._send_bytes(KEEPALIVE_PONG)
        elif isinstance(event, KeepAlivePong):
            self.pongs_received += 1
            self._pong.set()
        elif isinstance(event, InvalidMessage):
            self._invalid(event)
        elif isinstance(event, SipRequest | SipResponse):
            try:
                on_message(event)
            except Exception:
                log.exception("SIP flow %s: handler failed on %s", self.name,
                              event.start_line()[:80])

    def _invalid(self, event: InvalidMessage) -> None:
        error: SipParseError = event.error
        reply = bad_request_response(error)
        partial = error.partial.start_line()[:80] if error.partial is not None else "?"
        log.warning("SIP flow %s: %s message (%s): %s%s", self.name,
                    "unframeable" if event.fatal else "bad", partial, error.reason,
                    f"; answered {reply.status}" if reply is not None else "; dropped")
        if reply is not None:
            with contextlib.suppress(FlowClosed):
                self.send(reply)
        if event.fatal:
            self._begin_close(f"framing error: {error.reason}", flush=True)

    # -- keep-alive -------------------------------------------------------------------

    async def _keepalive(self, interval_s: float) -> None:
        """Ping every ``interval_s``; close when a pong does not follow in time."""
        while self.close_reason is None:
            await asyncio.sleep(interval_s)
            self._pong.clear()
            try:
                self._send_bytes(KEEPALIVE_PING)
            except FlowClosed:
                return
            self.pings_sent += 1
            try:
                await asyncio.wait_for(self._pong.wait(), self._pong_timeout_s)
            except TimeoutError:
                log.warning("SIP flow %s: no keep-alive pong within %.1f s; closing",
                            self.name, self._pong_timeout_s)
                self._begin_close("keep-alive pong timeout", flush=False)
                return

    # -- closing ----------------------------------------------------------------------

    async def close(self, reason: str = "closed") -> None:
        """Close the flow (idempotent): queued writes get a brief, bounded flush first."""
        self._begin_close(reason, flush=True)
        await self.wait_closed()

    async def wait_closed(self) -> str:
        """Wait until the flow is closed; the close reason."""
        await self._closed.wait()
        assert self.close_reason is not None
        return self.close_reason

    def _begin_close(self, reason: str, *, flush: bool) -> None:
        """Mark closed (first reason wins) and start tearing down in the background."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        log.info("SIP flow %s closing: %s", self.name, reason)
        if not self._closing.done():
            self._closing.set_result(None)
        self._close_task = asyncio.create_task(self._teardown(flush),
                                               name=f"sip-flow-close-{self.name}")
        # Also when the teardown task is cancelled before it ever ran (loop shutdown).
        self._close_task.add_done_callback(self._torn_down)

    def _torn_down(self, _task: asyncio.Task[None]) -> None:
        if not self._writer.transport.is_closing():
            self._writer.transport.abort()
        self._closed.set()

    async def _teardown(self, flush: bool) -> None:
        current = asyncio.current_task()
        try:
            writer_task = self._writer_task
            if writer_task is not None and writer_task is not current:
                if flush:
                    self._wake.set()  # the writer flushes, then returns
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(writer_task), _FLUSH_TIMEOUT_S)
                writer_task.cancel()
                with contextlib.suppress(BaseException):
                    await writer_task
            if self._keepalive_task is not None and self._keepalive_task is not current:
                self._keepalive_task.cancel()
            self._queue.clear()
            self._queued = 0
            self._writer.close()
            try:
                await asyncio.wait_for(self._writer.wait_closed(), _CLOSE_TIMEOUT_S)
            except (TimeoutError, ConnectionError, OSError):
                self._writer.transport.abort()
        finally:
            self._closed.set()


async def open_flow(host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                    server_hostname: str | None = None, connect_timeout_s: float = 10.0,
                    **flow_kwargs: Any) -> SipFlow:
    """Connect to ``host:port`` (TLS when ``ssl_context`` is given) as the client side.

    Args:
        host: the proxy's host name or address.
        port: its port.
        ssl_context: verifies the server's certificate; None for plain TCP.
        server_hostname: the name the certificate must carry (default: ``host``).
        connect_timeout_s: bound on TCP connect plus TLS handshake.
        **flow_kwargs: passed to `SipFlow` (keep-alive, limits, name...).

    Raises:
        SipTransportError: refused, timed out, or the certificate did not verify.
    """
    where = f"{host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context,
                                    server_hostname=server_hostname if ssl_context else None),
            connect_timeout_s)
    except ssl.SSLCertVerificationError as exc:
        raise SipTransportError(f"TLS to {where}: certificate verify failed: "
                                f"{exc.verify_message or exc.reason}") from exc
    except ssl.SSLError as exc:
        raise SipTransportError(f"TLS to {where}: handshake failed: {exc}") from exc
    except TimeoutError as exc:
        raise SipTransportError(f"connect to {where}: timeout after {connect_timeout_s} s"
                                ) from exc
    except ConnectionRefusedError as exc:
        raise SipTransportError(f"connect to {where}: connection refused") from exc
    except OSError as exc:
        raise SipTransportError(f"connect to {where}: {exc}") from exc
    flow_kwargs.setdefault("name", where)
    return SipFlow(reader, writer, server=False, **flow_kwargs)


async def serve_flows(host: str, port: int, on_flow: Callable[[SipFlow], Awaitable[None]], *,
                      ssl_context: ssl.SSLContext | None = None, max_flows: int = 1000,
                      **flow_kwargs: Any) -> asyncio.Server:
    """Accept connections on ``host:port``; ``on_flow`` runs for each (server side).

    The flow is closed when ``on_flow`` returns or raises (its exceptions are logged).
    Beyond ``max_flows`` connections at once, new ones are closed at once.

    Args:
        host: address to bind (``"127.0.0.1"``).
        port: port to bind (0: the OS picks; see ``server.sockets``).
        on_flow: runs the flow (usually ``await flow.run(...)``).
        ssl_context: a server context for TLS; None for TCP.
        max_flows: connections at once.
        **flow_kwargs: passed to `SipFlow`.
    """
    active: set[SipFlow] = set()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(active) >= max_flows:
            log.warning("SIP: %d connections already; refusing %s", len(active),
                        writer.get_extra_info("peername"))
            writer.transport.abort()
            return
        flow = SipFlow(reader, writer, server=True, **flow_kwargs)
        active.add(flow)
        try:
            await on_flow(flow)
        except Exception:
            log.exception("SIP flow %s: connection handler failed", flow.name)
        finally:
            active.discard(flow)
            await flow.close("connection handler finished")

    return await asyncio.start_server(accepted, host, port, ssl=ssl_context)


class Backoff:
    """Reconnect delays: exponential with jitter, capped; reset after a good connection.

    Delay n (from 0) is ``initial_s * factor**n`` capped at ``maximum_s``, then scaled
    by a random factor in ``[1 - jitter, 1 + jitter]`` (and capped again), so that many
    agents that lost the same proxy do not come back in lockstep.
    """

    def __init__(self, initial_s: float = 1.0, maximum_s: float = 60.0, factor: float = 2.0,
                 jitter: float = 0.2, random: Callable[[], float] = _random.random) -> None:
        if initial_s <= 0 or maximum_s < initial_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("Backoff needs 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")
        self._initial = initial_s
        self._maximum = maximum_s
        self._factor = factor
        self._jitter = jitter
        self._random = random
        self._base = initial_s

    def next_delay(self) -> float:
        """The delay before the next attempt (each call grows the following one)."""
        base = self._base
        self._base = min(self._maximum, base * self._factor)
        scale = 1.0 - self._jitter + 2.0 * self._jitter * self._random()
        return min(self._maximum, base * scale)

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a connection that worked)."""
        self._base = self._initial
