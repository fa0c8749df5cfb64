"""Connections of the fake RingCentral edge: one `SipFlow` per TLS (or TCP) connection.

A flow frames the stream with `SipStreamParser(server=True)`, answers RFC 5626 CRLF
keep-alive pings with a pong, answers what cannot be parsed with the 400 the parser
allows (closing when framing is lost), and matches responses to the edge's own client
transactions by top Via branch and CSeq method. Requests go to the edge's handler.

Everything is reliable transport, so nothing is retransmitted: a fake over loopback
TLS has no packet loss to cover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import OrderedDict
from collections.abc import Callable

from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import (
    KEEPALIVE_PONG,
    InvalidMessage,
    KeepAlivePing,
    KeepAlivePong,
    SipLimits,
    SipStreamParser,
    bad_request_response,
    new_branch,
)
from realtime_voice.sip.uri import SipParseError

__all__ = ["ClientTransaction", "FlowClosed", "MessageHandler", "SipFlow", "TransactionTimeout"]

log = logging.getLogger(__name__)

MessageHandler = Callable[["SipFlow", SipRequest], None]
"""Called with each request a flow receives (synchronously; spawn tasks for waiting)."""

_READ_CHUNK = 64 * 1024
_MAX_WRITE_BUFFER = 1024 * 1024  # a peer that stops reading is cut off, not buffered for
_MAX_TRANSACTIONS = 256  # per flow; the oldest (long finished) go first
_MAX_RESPONSES = 64  # per transaction: a peer spamming 1xx cannot grow memory


class FlowClosed(ConnectionError):
    """The connection closed before the awaited response arrived."""


class TransactionTimeout(TimeoutError):
    """No final response within the time allowed."""


class ClientTransaction:
    """One request the edge sent on a flow, and the responses that came back.

    Attributes:
        request: the request sent.
        responses: every response received, in order (bounded).
        on_response: called with each response as it arrives (after it is recorded).
    """

    def __init__(self, request: SipRequest, flow: SipFlow) -> None:
        self.request = request
        self.responses: list[SipResponse] = []
        self.on_response: Callable[[SipResponse], None] | None = None
        self._flow = flow
        self._final = asyncio.Event()

    @property
    def final(self) -> SipResponse | None:
        """The first final (>= 200) response, or None while there is none."""
        return next((r for r in self.responses if r.status >= 200), None)

    def deliver(self, response: SipResponse) -> None:
        """Record ``response`` (called by the flow)."""
        if len(self.responses) >= _MAX_RESPONSES:
            log.warning("sip edge: dropping response %d, transaction full", response.status)
            return
        self.responses.append(response)
        if response.status >= 200:
            self._final.set()
        if self.on_response is not None:
            try:
                self.on_response(response)
            except Exception:  # a test hook's bug must not kill the connection
                log.exception("sip edge: response hook failed")

    async def wait_final(self, timeout_s: float = 5.0) -> SipResponse:
        """The final response, waiting up to ``timeout_s``.

        Raises:
            TransactionTimeout: none arrived in time.
            FlowClosed: the connection closed first.
        """
        final_wait = asyncio.ensure_future(self._final.wait())
        closed_wait = asyncio.ensure_future(self._flow.closed.wait())
        try:
            await asyncio.wait({final_wait, closed_wait}, timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            final_wait.cancel()
            closed_wait.cancel()
        final = self.final
        if final is not None:
            return final
        if self._flow.closed.is_set():
            raise FlowClosed(f"connection closed before a final response to "
                             f"{self.request.method}")
        raise TransactionTimeout(f"no final response to {self.request.method} "
                                 f"within {timeout_s} s")


class SipFlow:
    """One accepted connection: framing, keep-alive, sending and client transactions.

    Args:
        reader, writer: the accepted stream.
        on_request: gets every request received.
        limits: parser limits.
        on_close: called once when the connection is gone.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_request: MessageHandler,
        limits: SipLimits | None = None,
        on_close: Callable[[SipFlow], None] | None = None,
    ) -> None:
        self._reader, self._writer = reader, writer
        self._on_request, self._on_close = on_request, on_close
        self._parser = SipStreamParser(limits, server=True)
        self._transactions: OrderedDict[tuple[str, str], ClientTransaction] = OrderedDict()
        self.closed = asyncio.Event()
        """Set once the connection is closed (by either side)."""
        self.tls = writer.get_extra_info("sslcontext") is not None
        peer = writer.get_extra_info("peername") or ("?", 0)
        local = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1]))
        """The remote address and port."""
        self.local: tuple[str, int] = (str(local[0]), int(local[1]))
        """Our address and port on this connection."""
        self.pings = 0
        """Keep-alive pings received (each answered with a pong)."""

    @property
    def transport_name(self) -> str:
        """``"TLS"`` or ``"TCP"``, for Via headers."""
        return "TLS" if self.tls else "TCP"

    def via(self, branch: str | None = None) -> str:
        """A Via value for a request the edge sends on this flow."""
        host, port = self.local
        return f"SIP/2.0/{self.transport_name} {host}:{port};branch={branch or new_branch()}"

    def send(self, message: SipRequest | SipResponse) -> bool:
        """Write one message; False (and logged) when the connection is gone or stuck."""
        if self.closed.is_set() or self._writer.is_closing():
            log.info("sip edge: not sending %s on closed flow %s", _label(message), self.peer)
            return False
        transport = self._writer.transport
        if transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
            log.warning("sip edge: peer %s stopped reading; closing", self.peer)
            self.close()
            return False
        self._writer.write(message.serialize())
        return True

    def start_transaction(self, request: SipRequest) -> ClientTransaction:
        """Send ``request`` and track its responses (matched by top Via branch and CSeq method).

        The request must already carry its Via (see `via`).
        """
        transaction = ClientTransaction(request, self)
        key = (request.via[0].branch or "", request.cseq.method)
        self._transactions[key] = transaction
        self._transactions.move_to_end(key)
        while len(self._transactions) > _MAX_TRANSACTIONS:
            self._transactions.popitem(last=False)
        self.send(request)
        return transaction

    def close(self) -> None:
        """Close the connection (idempotent); buffered bytes are flushed first."""
        if not self._writer.is_closing():
            self._writer.close()
        self._mark_closed()

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if self._on_close is not None:
            self._on_close(self)

    async def run(self) -> None:
        """Read until the connection ends; every problem ends in a log line, never a crash."""
        try:
            while not self.closed.is_set():
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    break
                if not self._feed(data):
                    break
        except (ConnectionError, ssl.SSLError, OSError) as error:
            log.info("sip edge: connection %s ended: %s", self.peer, error)
        finally:
            self.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    def _feed(self, data: bytes) -> bool:
        """Handle the bytes; False when the stream must close."""
        try:
            events = self._parser.feed(data)
        except SipParseError as error:  # fed after a fatal event; cannot happen, but be safe
            log.warning("sip edge: %s", error)
            return False
        for event in events:
            if isinstance(event, KeepAlivePing):
                self.pings += 1
                if not self._writer.is_closing():
                    self._writer.write(KEEPALIVE_PONG)
            elif isinstance(event, KeepAlivePong):
                continue
            elif isinstance(event, InvalidMessage):
                log.warning("sip edge: invalid message from %s: %s", self.peer, event.error)
                reply = bad_request_response(event.error)
                if reply is not None:
                    self.send(reply)
                if event.fatal:
                    return False
            elif isinstance(event, SipResponse):
                self._response(event)
            else:
                try:
                    self._on_request(self, event)
                except Exception:  # the fake's own bug: log it, keep serving the others
                    log.exception("sip edge: handling %s failed", _label(event))
        return True

    def _response(self, response: SipResponse) -> None:
        try:
            key = (response.via[0].branch or "", response.cseq.method)
        except SipParseError as error:
            log.warning("sip edge: unroutable response: %s", error)
            return
        transaction = self._transactions.get(key)
        if transaction is None:
            log.info("sip edge: stray response %d %s", response.status, key)
            return
        transaction.deliver(response)


def _label(message: SipRequest | SipResponse) -> str:
    return message.method if isinstance(message, SipRequest) else str(message.status)
