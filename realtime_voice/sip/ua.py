"""The SIP user agent: a registered RingCentral device that answers the calls sent to it.

`SipUserAgent` keeps one TLS flow to the outbound proxy (the certificate verified
against ``RC_SIP_CA_FILE`` or the system CAs), registers over it, re-registers every
30 s as RingCentral's SDK does, and when the flow drops reconnects with backoff and
registers again. Calls arrive as INVITEs over that same flow (no listening port, no
public address: docs/RINGCENTRAL_SIP.md §3); each becomes an `IncomingCall` handed to
``on_call``. In-dialog requests are routed to their `SipCall`; OPTIONS, INFO and MESSAGE
outside a dialog get a 200; what we do not do gets 405 or 501. After a reconnect, the
calls in progress keep their media and send their in-dialog requests on the new flow.

For peers that call us directly (SIPp over TCP in the tests), `listen` also accepts
connections; the calls work the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from realtime_voice.sip.call import CallEnded, IncomingCall, SipCall
from realtime_voice.sip.dialog import DialogError, LocalContact
from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import build_response
from realtime_voice.sip.outbound import DialResult, dial
from realtime_voice.sip.registration import (
    ALLOW,
    USER_AGENT,
    Registration,
    RegistrationState,
    RegistrationStatus,
    SipAccount,
)
from realtime_voice.sip.sdp_model import SdpError
from realtime_voice.sip.sdp_negotiation import DEFAULT_CODECS, Codec, NegotiatedMedia
from realtime_voice.sip.trace import redact
from realtime_voice.sip.transaction import (
    InviteServerTransaction,
    ServerTransaction,
    TransactionLayer,
    TransactionTimeout,
)
from realtime_voice.sip.transport import (
    Backoff,
    FlowClosed,
    SipFlow,
    SipTransportError,
    open_flow,
    serve_flows,
)
from realtime_voice.sip.uri import SipParseError

__all__ = ["CallHandler", "SipUserAgent", "UaSettings"]

log = logging.getLogger(__name__)
trace = logging.getLogger("realtime_voice.sip.trace")
"""Every message sent and received, at DEBUG (secrets redacted)."""

CallHandler = Callable[[IncomingCall], Awaitable[None]]
"""Decides about one incoming call: answer it, or reject it."""


@dataclass(frozen=True)
class UaSettings:
    """Timers and bounds of the user agent.

    Attributes:
        keepalive_interval_s: RFC 5626 CRLF ping period on the registered flow.
        pong_timeout_s: a ping unanswered this long means the flow is dead.
        refresh_interval_s: re-REGISTER this often (RingCentral's SDK: 30 s).
        connect_timeout_s: TCP + TLS handshake bound.
        refusal_retry_s: wait after refused credentials before trying again.
        max_refusals: refusals in a row before the agent stops trying.
        max_calls: calls at once; beyond, INVITEs get 486 Busy Here.
        t1_s: the RFC 3261 T1 timer (2xx retransmission, transaction timeouts).
    """

    keepalive_interval_s: float = 25.0
    pong_timeout_s: float = 10.0
    refresh_interval_s: float = 30.0
    connect_timeout_s: float = 10.0
    refusal_retry_s: float = 300.0
    max_refusals: int = 3
    max_calls: int = 100
    t1_s: float = 0.5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0


class _Flow:
    """One connection with its transaction layer: what calls send through (`CallFlow`)."""

    def __init__(self, flow: SipFlow, user: str | None, instance_id: str,
                 on_request: Callable[[_Flow, ServerTransaction | InviteServerTransaction], None],
                 on_stray: Callable[[SipResponse], None], t1_s: float) -> None:
        self.flow = flow
        host, port = flow.local_address[:2]
        self.local = LocalContact(host, port, flow.transport, user, instance_id)
        self.layer = TransactionLayer(self.send, on_request=lambda txn: on_request(self, txn),
                                      on_stray_response=on_stray, t1_s=t1_s)
        self.closed = asyncio.ensure_future(self._run())

    def _receive(self, message: SipRequest | SipResponse) -> None:
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("SIP %s <<<\n%s", self.flow.name, redact(message))
        self.layer.on_message(message)

    async def _run(self) -> str:
        try:
            reason = await self.flow.run(self._receive)
        finally:
            self.layer.close("connection closed")
        return reason

    @property
    def is_closed(self) -> bool:
        return self.flow.is_closed

    def send(self, message: SipRequest | SipResponse) -> None:
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("SIP %s >>>\n%s", self.flow.name, redact(message))
        self.flow.send(message)

    async def exchange(self, request: SipRequest) -> SipResponse:
        return await self.layer.request(request)

    async def exchange_with_progress(
        self, request: SipRequest, on_provisional: Callable[[SipResponse], None],
    ) -> SipResponse:
        return await self.layer.request(request, on_provisional=on_provisional)


class SipUserAgent:
    """A RingCentral softphone device (see the module docstring).

    Args:
        account: the device's credentials; None for a listening-only agent (tests).
        ssl_context: verifies the outbound proxy (never unverified in production).
        on_call: called for each new incoming call (its own task).
        settings: timers and bounds.
        user: the Contact user for a listening-only agent.
    """

    def __init__(self, account: SipAccount | None, *, ssl_context: ssl.SSLContext | None,
                 on_call: CallHandler, settings: UaSettings | None = None,
                 user: str = "bot") -> None:
        self.account = account
        self._ssl = ssl_context
        self._on_call = on_call
        self.settings = settings or UaSettings()
        self.instance_id = f"urn:uuid:{uuid.uuid4()}"
        self._user = account.username if account else user
        self.registration = (Registration(account, instance_id=self.instance_id,
                                          refresh_interval_s=self.settings.refresh_interval_s)
                             if account else None)
        self.calls: dict[str, SipCall] = {}
        self._pending: dict[str, IncomingCall] = {}
        self._flows: set[_Flow] = set()
        self._primary: _Flow | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self.refusals = 0

    # -- lifecycle ------------------------------------------------------------------

    @property
    def status(self) -> RegistrationStatus:
        """The registration state (UNREGISTERED for a listening-only agent)."""
        if self.registration is None:
            return RegistrationStatus(RegistrationState.UNREGISTERED, "no account")
        return self.registration.status

    async def start(self) -> None:
        """Begin connecting and registering (returns at once)."""
        if self.registration is not None and self._main is None:
            self._main = asyncio.create_task(self._keep_registered(), name="sip-registration")

    async def wait_registered(self, timeout_s: float) -> RegistrationStatus:
        """Wait until registered or refused (for the CLI and tests); the status then."""
        registration = self.registration
        if registration is None:
            return self.status
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            registration.changed.clear()
            status = registration.status
            remaining = deadline - loop.time()
            if status.state in (RegistrationState.REGISTERED, RegistrationState.REFUSED) or (
                    remaining <= 0):
                return status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(registration.changed.wait(), remaining)

    async def listen(self, host: str, port: int, *,
                     ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Also accept connections from peers that call us directly; returns the address."""
        async def on_flow(flow: SipFlow) -> None:
            attached = self._attach(flow)
            await attached.closed

        server = await serve_flows(host, port, on_flow, ssl_context=ssl_context)
        self._servers.append(server)
        address = server.sockets[0].getsockname()
        return address[0], address[1]

    async def stop(self, *, unregister: bool = True) -> None:
        """Hang up nothing, but stop: unregister (bounded), close every flow."""
        self._stopping.set()
        primary = self._primary
        if (unregister and self.registration is not None and primary is not None
                and not primary.is_closed
                and self.registration.status.state is RegistrationState.REGISTERED):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.registration.register(
                    primary.exchange, primary.local, expires_s=0), 2.0)
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(BaseException):
                await self._main
        for server in self._servers:
            server.close()
        for call in list(self.calls.values()):
            await call.close()
        for flow in list(self._flows):
            await flow.flow.close("stopping")
            with contextlib.suppress(BaseException):
                await flow.closed
        for task in list(self._tasks):
            task.cancel()
        if self.registration is not None:
            self.registration.set_status(RegistrationState.UNREGISTERED, "stopped")

    def local_contact(self) -> LocalContact:
        """Our side of the registered flow (its address goes into an outbound offer).

        Raises:
            SipTransportError: not registered (no flow).
        """
        flow = self._primary
        if self.account is None or flow is None or flow.is_closed:
            raise SipTransportError("not registered: no flow to place the call on")
        return flow.local

    async def dial(self, target: str, *, address: str | None = None, port: int, key: bytes,
                   codecs: Sequence[Codec] = DEFAULT_CODECS, ring_timeout_s: float = 60.0,
                   on_early_media: Callable[[NegotiatedMedia], None] | None = None,
                   ) -> DialResult:
        """Place a call through the registered device (see `realtime_voice.sip.outbound`).

        Raises:
            SipTransportError: not registered (no flow to send on).
            ValueError: a target that is not a number, extension or SIP URI.
        """
        flow = self._primary
        if self.account is None or flow is None or flow.is_closed:
            raise SipTransportError("not registered: no flow to place the call on")
        result = await dial(flow, self.account, target, address=address or flow.local.host,
                            port=port, key=key, codecs=codecs, ring_timeout_s=ring_timeout_s,
                            on_early_media=on_early_media)
        if result.call is not None:
            self._established(result.call)
        return result

    # -- registration ---------------------------------------------------------------

    async def _keep_registered(self) -> None:
        assert self.account is not None and self.registration is not None
        account, registration, settings = self.account, self.registration, self.settings
        backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        while not self._stopping.is_set():
            try:
                sip_flow = await open_flow(
                    account.proxy_host, account.proxy_port, ssl_context=self._ssl,
                    server_hostname=account.proxy_host if self._ssl else None,
                    connect_timeout_s=settings.connect_timeout_s,
                    keepalive_interval_s=settings.keepalive_interval_s,
                    pong_timeout_s=settings.pong_timeout_s,
                    name=f"{account.proxy_host}:{account.proxy_port}")
            except SipTransportError as exc:
                registration.set_status(RegistrationState.FAILING, f"cannot connect: {exc}")
                log.warning("SIP: cannot connect to %s:%s: %s", account.proxy_host,
                            account.proxy_port, exc)
                await self._pause(backoff.next_delay())
                continue
            flow = self._attach(sip_flow)
            self._primary = flow
            for call in self.calls.values():  # in-dialog requests now go this way
                if getattr(call.flow, "is_closed", False):
                    call.flow = flow
            if await self._register_on(flow, backoff):
                return  # refused too often: stay down until restarted
            reason = flow.flow.close_reason or "closed"
            if not self._stopping.is_set():
                registration.set_status(RegistrationState.FAILING, f"connection lost: {reason}")
                log.warning("SIP: flow to %s lost (%s); reconnecting", account.proxy_host,
                            reason)
                await self._pause(backoff.next_delay())

    async def _register_on(self, flow: _Flow, backoff: Backoff) -> bool:
        """Register and refresh over one flow until it closes; True means give up."""
        assert self.registration is not None
        registration, settings = self.registration, self.settings
        while not flow.is_closed and not self._stopping.is_set():
            before = registration.status.state
            try:
                status = await registration.register(flow.exchange, flow.local)
            except (TransactionTimeout, FlowClosed, SipParseError) as exc:
                registration.set_status(RegistrationState.FAILING, f"REGISTER failed: {exc}")
                log.warning("SIP: REGISTER failed: %s", exc)
                await flow.flow.close("REGISTER failed")
                return False
            if status.state is RegistrationState.REGISTERED:
                if before is not RegistrationState.REGISTERED:
                    log.info("SIP: registered as %s (expires %ss)", registration.account.aor,
                             status.expires_s)
                backoff.reset()
                self.refusals = 0
                await self._pause(registration.refresh_delay(), flow)
            elif status.state is RegistrationState.REFUSED:
                self.refusals += 1
                if self.refusals >= settings.max_refusals:
                    log.error("SIP: registration refused %d times; giving up until restart "
                              "(%s)", self.refusals, status.detail)
                    await flow.flow.close("registration refused")
                    return True
                await self._pause(settings.refusal_retry_s, flow)
            else:
                await self._pause(backoff.next_delay(), flow)
        return False

    async def _pause(self, seconds: float, flow: _Flow | None = None) -> None:
        """Sleep, cut short by stop() or by ``flow`` closing."""
        waiters: list[asyncio.Future[object]] = [
            asyncio.ensure_future(self._stopping.wait())]
        if flow is not None:
            waiters.append(asyncio.ensure_future(asyncio.shield(flow.closed)))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- requests -------------------------------------------------------------------

    def _attach(self, sip_flow: SipFlow) -> _Flow:
        flow = _Flow(sip_flow, self._user, self.instance_id, self._on_request,
                     self._on_stray, self.settings.t1_s)
        self._flows.add(flow)
        flow.closed.add_done_callback(lambda _: self._flows.discard(flow))
        return flow

    def _on_stray(self, response: SipResponse) -> None:
        log.debug("SIP: stray %s %s", response.status, response.reason)

    def _on_request(self, flow: _Flow,
                    transaction: ServerTransaction | InviteServerTransaction) -> None:
        request = transaction.request
        try:
            to_tag = request.to.tag
            call_id = request.call_id
        except SipParseError as exc:
            transaction.respond(build_response(request, 400, "Bad Request",
                                               headers=[("Warning", f'399 - "{exc}"')]))
            return
        if to_tag:
            call = self.calls.get(call_id)
            if call is not None and call.dialog.matches(request):
                call.handle(transaction)
            else:
                transaction.respond(build_response(request, 481,
                                                   "Call/Transaction Does Not Exist"))
            return
        if request.method == "INVITE" and isinstance(transaction, InviteServerTransaction):
            self._new_call(flow, transaction)
        elif request.method in ("OPTIONS", "INFO", "MESSAGE", "NOTIFY"):
            transaction.respond(build_response(request, 200, "OK", headers=[
                ("Allow", ALLOW), ("Accept", "application/sdp"), ("User-Agent", USER_AGENT)]))
        elif request.method in ("REGISTER", "SUBSCRIBE", "PUBLISH", "PRACK"):
            transaction.respond(build_response(request, 405, "Method Not Allowed",
                                               headers=[("Allow", ALLOW)]))
        else:
            transaction.respond(build_response(request, 501, "Not Implemented",
                                               headers=[("Allow", ALLOW)]))

    def _new_call(self, flow: _Flow, transaction: InviteServerTransaction) -> None:
        request = transaction.request
        if len(self.calls) + len(self._pending) >= self.settings.max_calls:
            transaction.respond(build_response(request, 486, "Busy Here"))
            return
        try:
            incoming = IncomingCall(transaction, flow, self._established)
        except SdpError as exc:
            log.warning("SIP: INVITE %s with unusable SDP: %s", request.call_id, exc)
            transaction.respond(build_response(request, 488, "Not Acceptable Here",
                                               headers=[("Warning", f'399 - "{exc}"')]))
            return
        except (DialogError, SipParseError) as exc:
            transaction.respond(build_response(request, 400, "Bad Request",
                                               headers=[("Warning", f'399 - "{exc}"')]))
            return
        self._pending[incoming.call_id] = incoming
        task = asyncio.create_task(self._offer_call(incoming), name=f"sip-call-{incoming.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer_call(self, incoming: IncomingCall) -> None:
        try:
            await self._on_call(incoming)
        except CallEnded as exc:
            log.info("SIP: call %s ended before it began: %s", incoming.call_id, exc)
        except Exception:
            log.exception("SIP: call handler failed for %s", incoming.call_id)
            incoming.reject(500, "Server Internal Error")
        finally:
            self._pending.pop(incoming.call_id, None)
            if not incoming.transaction.answered:
                incoming.reject(480, "Temporarily Unavailable")

    def _established(self, call: SipCall) -> None:
        self.calls[call.call_id] = call
        self._pending.pop(call.call_id, None)

        def forget() -> None:
            if self.calls.get(call.call_id) is call:
                del self.calls[call.call_id]

        async def when_ended() -> None:
            await call.ended.wait()
            # Keep the dialog a little: a retransmitted BYE still finds it.
            await asyncio.sleep(self.settings.t1_s * 64)
            forget()

        task = asyncio.create_task(when_ended())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
