"""SIP transactions (RFC 3261 §17) over a reliable transport.

Sans-socket: a `TransactionLayer` is given a ``send`` callable (usually
`realtime_voice.sip.transport.SipFlow.send`) and is fed every inbound message through
`TransactionLayer.on_message`. On TLS/TCP nothing is retransmitted except the 2xx to an
INVITE, which RFC 3261 §13.3.1.4 has the UAS core resend until the ACK even on reliable
transports; the timeouts (timer B/F, 64*T1) still apply.

Client side: `TransactionLayer.request` sends a request and resolves with its final
response, matched by top Via branch and CSeq method (§17.1.3). A non-2xx final to an
INVITE is ACKed here (§17.1.1.3); a 2xx is the dialog's to ACK, and its retransmissions
go to ``on_stray_response``.

Server side: each new request becomes a `ServerTransaction` or an
`InviteServerTransaction` handed to ``on_request``. Retransmitted requests, ACKs and
CANCELs are dealt with here and never reach ``on_request``. Finished transactions are
remembered for 64*T1 to absorb retransmissions, then forgotten; beyond
``max_transactions`` at once, new requests get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from realtime_voice.sip.headers import Headers, SipMessage, SipRequest, SipResponse
from realtime_voice.sip.message import build_response, new_tag
from realtime_voice.sip.transport import FlowClosed
from realtime_voice.sip.uri import SipParseError

__all__ = [
    "InviteServerTransaction",
    "ServerTransaction",
    "TransactionLayer",
    "TransactionTimeout",
]

log = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"
"""The RFC 3261 branch prefix: a branch starting with it is unique per transaction."""

# (branch, or branch|Call-ID|CSeq number from an RFC 2543 peer; sent-by; method)
_ServerKey = tuple[str, str, str]
_AckKey = tuple[str, int, str]  # (Call-ID, CSeq number, From tag): a 2xx ACK has a new branch


class TransactionTimeout(Exception):
    """No final response in time (timer B/F: 64*T1, or the caller's ``timeout_s``)."""


def _server_key(request: SipRequest, method: str) -> _ServerKey:
    """The server transaction a request belongs to (RFC 3261 §17.2.3).

    Raises:
        SipParseError: no usable Via, Call-ID or CSeq.
    """
    via = request.via[0]
    branch = via.branch or ""
    sent_by = f"{via.host}:{via.port or ''}"
    if branch.startswith(MAGIC_COOKIE):
        return branch, sent_by, method
    # An RFC 2543 peer: its branch (if any) is not unique, so add what identifies the
    # request; ACK and CANCEL share the INVITE's Call-ID and CSeq number.
    return f"{branch}|{request.call_id}|{request.cseq.number}", sent_by, method


def _ack_key(message: SipMessage) -> _AckKey:
    return message.call_id, message.cseq.number, message.from_.tag or ""


def _describe(message: SipMessage) -> str:
    """A short label for log lines."""
    try:
        return f"{message.start_line()[:60]} (Call-ID {message.call_id[:40]})"
    except SipParseError:
        return message.start_line()[:60]


class _ClientTransaction:
    """One request we sent, waiting for its final response."""

    def __init__(self, request: SipRequest, key: tuple[str, str],
                 future: asyncio.Future[SipResponse],
                 on_provisional: Callable[[SipResponse], None] | None) -> None:
        self.request = request
        self.key = key
        self.future = future
        self.on_provisional = on_provisional
        self.timer: asyncio.TimerHandle | None = None
        self.linger: asyncio.TimerHandle | None = None
        self.ack: SipRequest | None = None  # the ACK we sent for a non-2xx final
        self.fixed_timer = False  # the timer is the caller's bound (or already re-armed)

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    def cancel_timers(self) -> None:
        for handle in (self.timer, self.linger):
            if handle is not None:
                handle.cancel()
        self.timer = self.linger = None


class ServerTransaction:
    """A non-INVITE request we received; answer it with `respond`.

    Attributes:
        request: the request.
    """

    def __init__(self, layer: TransactionLayer, request: SipRequest, key: _ServerKey) -> None:
        self.request = request
        self._layer = layer
        self._key = key
        self._last: SipResponse | None = None
        self._final = False
        self._forget: asyncio.TimerHandle | None = None

    @property
    def answered(self) -> bool:
        """Whether a final response was sent."""
        return self._final

    def respond(self, response: SipResponse) -> None:
        """Send ``response``; a retransmitted request gets the last one again.

        A response after the final one is logged and dropped (RFC 3261 §17.2.2).
        """
        if self._final:
            log.warning("SIP: %s already answered; dropping %d", _describe(self.request),
                        response.status)
            return
        self._last = response
        if response.status >= 200:
            self._final = True
            self._layer._finished(self, self._key)
        self._layer._transmit(response)

    def _retransmitted(self) -> None:
        """The request came again: repeat the last response (none yet: absorb it)."""
        if self._last is not None:
            self._layer._transmit(self._last)

    def _stop(self) -> None:
        if self._forget is not None:
            self._forget.cancel()
            self._forget = None


class InviteServerTransaction(ServerTransaction):
    """An INVITE we received. The layer has sent 100 Trying already.

    `respond` sends 1xx as they come; a 2xx is re-sent at T1, 2*T1... (capped at T2)
    until the ACK arrives, for up to 64*T1; the ACK of a 3xx-6xx is absorbed.

    Attributes:
        request: the INVITE.
        cancelled: set when a CANCEL arrived before any final response (the layer has
            answered 487 Request Terminated then).
    """

    def __init__(self, layer: TransactionLayer, request: SipRequest, key: _ServerKey) -> None:
        super().__init__(layer, request, key)
        self.cancelled = asyncio.Event()
        self._ack: asyncio.Future[SipRequest | None] = asyncio.get_running_loop().create_future()
        self._retransmit: asyncio.TimerHandle | None = None
        self._interval = layer.t1_s
        self._give_up: asyncio.TimerHandle | None = None
        self._final_response: SipResponse | None = None

    def respond(self, response: SipResponse) -> None:
        """Send ``response`` (see the class docstring); after the final one, drop it."""
        if self._final:
            log.warning("SIP: %s already answered %s; dropping %d", _describe(self.request),
                        self._final_response.status if self._final_response else "?",
                        response.status)
            return
        self._last = response
        if response.status >= 200:
            self._final = True
            self._final_response = response
            loop = asyncio.get_running_loop()
            layer = self._layer
            if response.status < 300:
                self._retransmit = loop.call_later(self._interval, self._resend)
            self._give_up = loop.call_later(64 * layer.t1_s, self._no_ack)
            layer._finished(self, self._key)
        self._layer._transmit(response)

    async def wait_ack(self) -> SipRequest | None:
        """The ACK of our 2xx (a delayed offer's answer is its body), or None.

        None: no ACK within 64*T1 of the final response, the final response was not a
        2xx (its ACK is absorbed), or the layer closed.
        """
        return await asyncio.shield(self._ack)

    def _resend(self) -> None:
        """RFC 3261 §13.3.1.4: the 2xx again, doubling the interval up to T2."""
        self._retransmit = None
        if self._ack.done() or self._final_response is None:
            return
        self._layer._transmit(self._final_response)
        self._interval = min(self._interval * 2, self._layer.t2_s)
        self._retransmit = asyncio.get_running_loop().call_later(self._interval, self._resend)

    def _no_ack(self) -> None:
        self._give_up = None
        if not self._ack.done():
            if self._final_response is not None and self._final_response.status < 300:
                log.warning("SIP: no ACK for the %d to %s within %.1f s",
                            self._final_response.status, _describe(self.request),
                            64 * self._layer.t1_s)
            self._ack.set_result(None)
        self._stop_retransmit()

    def _acked(self, ack: SipRequest) -> None:
        if self._final_response is None:
            log.debug("SIP: ACK before any final response to %s; dropped",
                      _describe(self.request))
            return
        if self._ack.done():
            return  # a retransmitted ACK
        self._stop_retransmit()
        self._ack.set_result(ack if self._final_response.status < 300 else None)

    def _stop_retransmit(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None

    def _stop(self) -> None:
        super()._stop()
        self._stop_retransmit()
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        if not self._ack.done():
            self._ack.set_result(None)

    def _to_tag(self) -> str:
        """The To tag our responses so far used, or a fresh one (for the 487)."""
        if self._last is not None:
            with contextlib.suppress(SipParseError):
                tag = self._last.to.tag
                if tag:
                    return tag
        return new_tag()


class TransactionLayer:
    """Client and server transactions over one reliable flow (see the module docstring).

    Args:
        send: puts one message on the wire (never blocks; may raise `FlowClosed`).
        on_request: gets each new server transaction (not retransmissions, ACK, CANCEL).
        on_stray_response: gets responses that match no client transaction (e.g. a
            retransmitted 2xx to our INVITE, for the dialog to ACK again).
        t1_s: RFC 3261 T1 (the round-trip estimate; timeouts are 64*T1).
        t2_s: RFC 3261 T2 (the cap on the 2xx retransmission interval).
        max_transactions: server transactions at once; beyond, requests get 503.
        invite_proceeding_timeout_s: bound on an INVITE that had a provisional response
            (RFC 3261 has no timer there; this keeps a silent proxy from holding it forever).
    """

    def __init__(self, send: Callable[[SipMessage], None], *,
                 on_request: Callable[[ServerTransaction | InviteServerTransaction], None],
                 on_stray_response: Callable[[SipResponse], None] | None = None,
                 t1_s: float = 0.5, t2_s: float = 4.0, max_transactions: int = 10_000,
                 invite_proceeding_timeout_s: float = 300.0) -> None:
        self._send = send
        self._on_request = on_request
        self._on_stray = on_stray_response
        self.t1_s = t1_s
        self.t2_s = t2_s
        self._max = max_transactions
        self._proceeding_timeout_s = invite_proceeding_timeout_s
        self._clients: dict[tuple[str, str], _ClientTransaction] = {}
        self._servers: dict[_ServerKey, ServerTransaction] = {}
        self._acks: dict[_AckKey, InviteServerTransaction] = {}
        self._closed: str | None = None

    @property
    def is_closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed is not None

    @property
    def pending_requests(self) -> int:
        """Client transactions remembered (waiting, or absorbing late finals)."""
        return len(self._clients)

    @property
    def server_transactions(self) -> int:
        """Server transactions remembered (open, or absorbing retransmissions)."""
        return len(self._servers)

    # -- sending --------------------------------------------------------------------

    def _transmit(self, message: SipMessage) -> bool:
        """Send, logging instead of raising (timers and responses call this)."""
        if self._closed is not None:
            log.debug("SIP: layer closed; not sending %s", message.start_line()[:60])
            return False
        try:
            self._send(message)
        except Exception as exc:
            log.warning("SIP: cannot send %s: %s", message.start_line()[:60], exc)
            return False
        return True

    # -- client side ----------------------------------------------------------------

    async def request(self, request: SipRequest, *,
                      on_provisional: Callable[[SipResponse], None] | None = None,
                      timeout_s: float | None = None) -> SipResponse:
        """Send ``request``; its final response.

        For a non-2xx final response to an INVITE this layer sends the ACK; the ACK of a
        2xx is the caller's (it belongs to the dialog).

        Args:
            request: the request, with a top Via carrying a fresh branch.
            on_provisional: called with each 1xx.
            timeout_s: overall bound; default 64*T1 (for an INVITE, until the first
                provisional response; then ``invite_proceeding_timeout_s``).

        Raises:
            TransactionTimeout: no final response in time.
            FlowClosed: the layer is (or got) closed.
            ValueError: an ACK, a request without a Via branch, or a branch in use.
        """
        if self._closed is not None:
            raise FlowClosed(self._closed)
        if request.method == "ACK":
            raise ValueError("an ACK is not a transaction: send it directly")
        try:
            branch = request.via[0].branch
        except SipParseError as exc:
            raise ValueError(f"request has no usable Via: {exc}") from exc
        if not branch:
            raise ValueError("request's top Via has no branch")
        key = (branch, request.method)
        if key in self._clients:
            raise ValueError(f"a {request.method} transaction with branch {branch} is pending")
        loop = asyncio.get_running_loop()
        txn = _ClientTransaction(request, key, loop.create_future(), on_provisional)
        self._clients[key] = txn
        try:
            self._send(request)
        except BaseException:
            del self._clients[key]
            raise
        txn.timer = loop.call_later(64 * self.t1_s if timeout_s is None else timeout_s,
                                    self._timed_out, txn)
        txn.fixed_timer = timeout_s is not None
        if request.method == "CANCEL":
            self._cancel_sent(branch)
        try:
            return await txn.future
        finally:
            future = txn.future
            if not future.done() or future.cancelled() or future.exception() is not None:
                self._drop_client(txn)  # timed out, closed, or our caller gave up

    def _cancel_sent(self, branch: str) -> None:
        """RFC 3261 §9.1: a cancelled INVITE ends 64*T1 later even without its 487."""
        invite = self._clients.get((branch, "INVITE"))
        if invite is not None and not invite.future.done():
            if invite.timer is not None:
                invite.timer.cancel()
            invite.timer = asyncio.get_running_loop().call_later(
                64 * self.t1_s, self._timed_out, invite)
            invite.fixed_timer = True  # a late 1xx must not lift it

    def _timed_out(self, txn: _ClientTransaction) -> None:
        txn.timer = None
        if not txn.future.done():
            txn.future.set_exception(TransactionTimeout(
                f"no final response to {txn.request.method} (Call-ID "
                f"{txn.request.headers.get('Call-ID')}) in time"))
        self._drop_client(txn)

    def _drop_client(self, txn: _ClientTransaction) -> None:
        txn.cancel_timers()
        if self._clients.get(txn.key) is txn:
            del self._clients[txn.key]

    def _on_response(self, response: SipResponse) -> None:
        try:
            branch = response.via[0].branch or ""
            method = response.cseq.method
        except SipParseError as exc:
            log.info("SIP: dropping a response without usable Via/CSeq: %s", exc)
            return
        txn = self._clients.get((branch, method))
        if txn is None:
            self._stray(response)
            return
        if txn.future.done():  # a retransmitted final response
            if txn.is_invite and response.status >= 300 and txn.ack is not None:
                self._transmit(txn.ack)
            elif txn.is_invite and response.status >= 200:
                self._stray(response)
            return
        if response.status < 200:
            if txn.on_provisional is not None:
                try:
                    txn.on_provisional(response)
                except Exception:
                    log.exception("SIP: on_provisional failed for %s", _describe(response))
            if txn.is_invite and not txn.fixed_timer:
                # RFC 3261 §17.1.1.2: Proceeding has no timer B; bound it anyway.
                if txn.timer is not None:
                    txn.timer.cancel()
                txn.timer = asyncio.get_running_loop().call_later(
                    self._proceeding_timeout_s, self._timed_out, txn)
                txn.fixed_timer = True
            return
        if txn.timer is not None:
            txn.timer.cancel()
            txn.timer = None
        if txn.is_invite and response.status >= 300:
            txn.ack = _ack_for(txn.request, response)
            self._transmit(txn.ack)
        txn.future.set_result(response)
        if txn.is_invite and response.status < 300:
            del self._clients[txn.key]  # further 2xx are the dialog's (on_stray_response)
        else:
            # Absorb retransmitted finals (and re-ACK a non-2xx) for a while.
            txn.linger = asyncio.get_running_loop().call_later(
                64 * self.t1_s, self._drop_client, txn)

    def _stray(self, response: SipResponse) -> None:
        if self._on_stray is None:
            log.debug("SIP: stray response %s", _describe(response))
            return
        try:
            self._on_stray(response)
        except Exception:
            log.exception("SIP: on_stray_response failed for %s", _describe(response))

    # -- server side ----------------------------------------------------------------

    def on_message(self, message: SipMessage) -> None:
        """Take one inbound message (feed every message from the flow here)."""
        if self._closed is not None:
            log.debug("SIP: layer closed; dropping %s", message.start_line()[:60])
            return
        if isinstance(message, SipResponse):
            self._on_response(message)
            return
        try:
            if message.method == "ACK":
                self._on_ack(message)
            elif message.method == "CANCEL":
                self._on_cancel(message)
            else:
                self._on_new_request(message)
        except SipParseError as exc:
            log.info("SIP: dropping %s: %s", message.start_line()[:60], exc)

    def _on_new_request(self, request: SipRequest) -> None:
        key = _server_key(request, request.method)
        existing = self._servers.get(key)
        if existing is not None:
            log.debug("SIP: retransmitted %s absorbed", _describe(request))
            existing._retransmitted()
            return
        if len(self._servers) >= self._max:
            log.warning("SIP: %d transactions at once; 503 to %s", self._max,
                        _describe(request))
            self._transmit(build_response(request, 503, headers=[("Retry-After", "5")]))
            return
        txn: ServerTransaction | InviteServerTransaction
        if request.method == "INVITE":
            invite = InviteServerTransaction(self, request, key)
            self._acks[_ack_key(request)] = invite
            txn = invite
            invite.respond(build_response(request, 100))  # at once: stops the caller's timer
        else:
            txn = ServerTransaction(self, request, key)
        self._servers[key] = txn
        try:
            self._on_request(txn)
        except Exception:
            log.exception("SIP: request handler failed on %s", _describe(request))
            if not txn.answered:
                txn.respond(build_response(request, 500, to_tag=new_tag()))

    def _on_ack(self, ack: SipRequest) -> None:
        txn = self._servers.get(_server_key(ack, "INVITE"))
        invite = txn if isinstance(txn, InviteServerTransaction) else None
        if invite is None:
            invite = self._acks.get(_ack_key(ack))
        if invite is None:
            log.debug("SIP: ACK matching no transaction dropped: %s", _describe(ack))
            return
        invite._acked(ack)

    def _on_cancel(self, cancel: SipRequest) -> None:
        key = _server_key(cancel, "CANCEL")
        existing = self._servers.get(key)
        if existing is not None:
            existing._retransmitted()
            return
        txn = ServerTransaction(self, cancel, key)
        self._servers[key] = txn
        target = self._servers.get(_server_key(cancel, "INVITE"))
        if not isinstance(target, InviteServerTransaction):
            txn.respond(build_response(cancel, 481, to_tag=new_tag()))
            return
        tag = target._to_tag()
        txn.respond(build_response(cancel, 200, to_tag=tag))
        if not target.answered:
            target.respond(build_response(target.request, 487, to_tag=tag))
            target.cancelled.set()

    def _finished(self, txn: ServerTransaction, key: _ServerKey) -> None:
        """A final response went out: remember the transaction 64*T1, then forget it."""
        txn._forget = asyncio.get_running_loop().call_later(
            64 * self.t1_s, self._forget_server, txn, key)

    def _forget_server(self, txn: ServerTransaction, key: _ServerKey) -> None:
        txn._forget = None
        txn._stop()
        if self._servers.get(key) is txn:
            del self._servers[key]
        if isinstance(txn, InviteServerTransaction):
            with contextlib.suppress(SipParseError):
                ack_key = _ack_key(txn.request)
                if self._acks.get(ack_key) is txn:
                    del self._acks[ack_key]

    # -- closing --------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Fail pending requests with `FlowClosed` (``reason``), stop every timer."""
        if self._closed is not None:
            return
        self._closed = reason
        for txn in list(self._clients.values()):
            txn.cancel_timers()
            if not txn.future.done():
                txn.future.set_exception(FlowClosed(reason))
        self._clients.clear()
        for server in list(self._servers.values()):
            server._stop()
        self._servers.clear()
        self._acks.clear()


def _ack_for(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK of a non-2xx final response (RFC 3261 §17.1.1.3): same branch and URI."""
    headers = Headers()
    headers.add("Via", invite.headers.values("Via")[0])
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or invite.headers.get("To") or "")
    headers.add("Call-ID", invite.headers.get("Call-ID") or "")
    headers.add("CSeq", f"{invite.cseq.number} ACK")
    return SipRequest("ACK", invite.uri, headers=headers)
