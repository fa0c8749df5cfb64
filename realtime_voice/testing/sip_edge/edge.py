"""`FakeRingCentralEdge`: the stand-in for RingCentral's SIP outbound proxy in tests.

One asyncio TLS (or plain TCP) server. Every connection is a `SipFlow`; requests are
routed here:

- REGISTER → the `Registrar` (digest challenge, binding; knobs in `EdgeKnobs`);
- an out-of-dialog OPTIONS → 200 (keep-alive probes);
- an out-of-dialog INVITE for a registered user → a `Bridge` to that device (B2BUA
  mode, for a real caller such as baresip); for anyone else 404;
- a request in a dialog the edge knows → that `EdgeCall` (device side) or `Bridge`
  (caller side); a dialog the edge does not know → 481 (ACKs are dropped);
- anything else out of dialog → 405.

Tests push calls to a device with `invite` and drive them through the returned
`EdgeCall`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import OrderedDict
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any

from realtime_voice.sip.headers import SipRequest
from realtime_voice.sip.message import build_response, new_tag
from realtime_voice.sip.uri import SipParseError, SipUri
from realtime_voice.testing.sip_edge.b2bua import Bridge
from realtime_voice.testing.sip_edge.callee import Callee
from realtime_voice.testing.sip_edge.calls import EdgeCall
from realtime_voice.testing.sip_edge.dialog import EDGE_ALLOW
from realtime_voice.testing.sip_edge.flows import SipFlow
from realtime_voice.testing.sip_edge.registrar import Binding, EdgeKnobs, Registrar, Registration

__all__ = ["FakeRingCentralEdge"]

log = logging.getLogger(__name__)

_MAX_DIALOGS = 1024  # dialogs remembered for routing; the oldest are forgotten


class FakeRingCentralEdge:
    """A fake RingCentral SIP edge: registrar, call pusher and B2BUA with a media relay.

    Args:
        credentials: authorization ID -> password.
        knobs: behaviour knobs (default: RingCentral SDK style, MD5 without qop).
        ssl_context: the server TLS context (`LoopbackCertificates.server_context()`),
            or None for plain TCP.
        host: the address to listen on (and to put in relay SDP).

    Attributes:
        port: the listening port (OS-chosen), once started.
        calls: every `EdgeCall` pushed to a device (scripted or bridged).
        bridges: every `Bridge` made for a caller.
    """

    def __init__(
        self,
        *,
        credentials: dict[str, str],
        knobs: EdgeKnobs | None = None,
        ssl_context: ssl.SSLContext | None,
        host: str = "127.0.0.1",
    ) -> None:
        self.knobs = knobs or EdgeKnobs()
        self.host = host
        self.port = 0
        self.registrar = Registrar(credentials, self.knobs)
        self.calls: list[EdgeCall] = []
        self.bridges: list[Bridge] = []
        self.callees: dict[str, Callee] = {}
        """Numbers that outbound calls from a device reach (`Callee` scripts)."""
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._flows: set[SipFlow] = set()
        self._handlers: set[asyncio.Task[Any]] = set()  # the server's per-connection tasks
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialogs: OrderedDict[str, EdgeCall | Bridge | Callee] = OrderedDict()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host`` at an OS-chosen port (then in `port`)."""
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self._ssl)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, close every connection and relay, cancel background work."""
        if self._server is not None:
            self._server.close()
        for flow in list(self._flows):
            flow.close()
        for bridge in self.bridges:
            bridge.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        # Let each connection handler finish on its own: one cancelled at loop shutdown
        # instead trips asyncio's stream callback in Python 3.11 (a logged error).
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> FakeRingCentralEdge:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("sip edge: background task failed: %r", task.exception())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flow = SipFlow(reader, writer, on_request=self._on_request,
                       on_close=self._flows.discard)
        self._flows.add(flow)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            await flow.run()
        finally:
            self._handlers.discard(handler)

    # --- registrations ---------------------------------------------------------------

    @property
    def registrations(self) -> list[Registration]:
        """Every REGISTER outcome, oldest first."""
        return self.registrar.registrations

    @property
    def bindings(self) -> dict[str, Binding]:
        """The current binding of each registered user."""
        return self.registrar.bindings

    async def wait_registered(self, user: str, *, timeout_s: float = 5.0,
                              newer_than: Binding | None = None) -> Binding:
        """The latest binding of ``user`` (AOR user), once there is one.

        Args:
            user: the AOR user (To URI user) the device registered.
            timeout_s: how long to wait.
            newer_than: wait for a binding made after this one (re-registration after
                a reconnect).

        Raises:
            TimeoutError: none in time.
        """
        return await self.registrar.wait_registered(user, timeout_s=timeout_s,
                                                    newer_than=newer_than)

    def drop_flow(self, user: str) -> None:
        """Close the connection ``user`` registered on (a reconnect test's network drop)."""
        binding = self.registrar.bindings.get(user)
        if binding is not None:
            binding.flow.close()

    # --- scripted calls --------------------------------------------------------------

    async def invite(
        self,
        user: str,
        *,
        offer: bytes | None,
        auto_answer: bool = True,
        from_number: str = "+15550100",
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> EdgeCall:
        """Push an INVITE to ``user``'s device over its registered flow.

        Args:
            user: a registered AOR user.
            offer: the SDP offer, or None for a delayed offer (as from a call queue):
                the device's 200 then carries the offer, and ``EdgeCall.ack(answer)``
                puts the answer in the ACK.
            auto_answer: add RingCentral's auto-answer headers.
            from_number: the calling number (From user).
            extra_headers: more INVITE header fields.

        Raises:
            LookupError: ``user`` is not registered, or its connection is closed.
        """
        binding = self.registrar.bindings.get(user)
        if binding is None or binding.flow.closed.is_set():
            raise LookupError(f"{user} has no live registration")
        return self._push(binding, offer, from_number, auto_answer=auto_answer,
                          extra_headers=extra_headers)

    def _push(self, binding: Binding, offer: bytes | None, from_number: str, *,
              auto_answer: bool = True, extra_headers: Iterable[tuple[str, str]] = ()
              ) -> EdgeCall:
        call = EdgeCall(flow=binding.flow, target=binding.uri, user=binding.user,
                        realm=self.knobs.realm, offer=offer, auto_answer=auto_answer,
                        from_number=from_number, extra_headers=extra_headers,
                        record_route=self.knobs.record_route)
        self.calls.append(call)
        self._remember(call.call_id, call)
        call.start()
        return call

    def _remember(self, call_id: str, owner: EdgeCall | Bridge | Callee) -> None:
        self._dialogs[call_id] = owner
        while len(self._dialogs) > _MAX_DIALOGS:
            self._dialogs.popitem(last=False)

    # --- routing ---------------------------------------------------------------------

    def _on_request(self, flow: SipFlow, request: SipRequest) -> None:
        if request.method == "REGISTER":
            response = self.registrar.handle(flow, request)
            flow.send(response)
            if response.status == 200 and self.knobs.drop_after_register:
                flow.close()
            return
        try:
            to_tag = request.to.tag
            owner = self._dialogs.get(request.call_id)
        except SipParseError as error:  # the parser checked these; be safe anyway
            log.info("sip edge: unroutable %s: %s", request.method, error)
            return
        if isinstance(owner, Callee):
            owner.handle(flow, request)
        elif request.method == "INVITE" and to_tag is None and self._callee(request):
            callee = self._callee(request)
            assert callee is not None
            self._remember(request.call_id, callee)
            callee.handle(flow, request)
        elif isinstance(owner, Bridge) and (request.method in ("ACK", "CANCEL")
                                          or owner.caller.matches(request)):
            owner.handle_caller_request(request)
        elif isinstance(owner, EdgeCall) and owner.dialog.matches(request):
            owner.handle_request(request)
        elif request.method == "ACK":
            log.info("sip edge: ACK for no known dialog, dropped")
        elif to_tag is not None or request.method == "CANCEL":
            flow.send(build_response(request, 481))
        elif request.method == "OPTIONS":
            flow.send(build_response(request, 200, to_tag=new_tag(), headers=[
                ("Allow", EDGE_ALLOW), ("Accept", "application/sdp")]))
        elif request.method == "INVITE":
            self._bridge(flow, request)
        else:
            flow.send(build_response(request, 405, to_tag=new_tag(),
                                     headers=[("Allow", EDGE_ALLOW)]))

    def _callee(self, invite: SipRequest) -> Callee | None:
        uri = invite.uri
        return self.callees.get(uri.user or "") if isinstance(uri, SipUri) else None

    def _bridge(self, flow: SipFlow, invite: SipRequest) -> None:
        if invite.call_id in self._dialogs:  # a retransmission: already being handled
            return
        uri = invite.uri
        user = uri.user if isinstance(uri, SipUri) else None
        binding = self.registrar.bindings.get(user or "")
        if binding is None or binding.flow.closed.is_set():
            flow.send(build_response(invite, 404, to_tag=new_tag()))
            return
        bridge = Bridge(caller_flow=flow, invite=invite, binding=binding,
                        make_call=lambda b, offer, number: self._push(b, offer, number),
                        spawn=self._spawn, host=self.host)
        self.bridges.append(bridge)
        self._remember(bridge.call_id, bridge)
        bridge.start()
