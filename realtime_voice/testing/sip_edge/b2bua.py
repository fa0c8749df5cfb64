"""The fake edge as a B2BUA: a real caller (baresip) reaching the registered device.

A caller's INVITE for a registered user becomes a new INVITE over the device's flow,
as RingCentral delivers a PSTN call: a new Call-ID, tags and branches, ``Alert-Info:
Auto Answer``, and SDP pointing at the edge's `MediaRelay` (keys untouched, so SDES-SRTP
runs end to end). Responses go back to the caller with their SDP pointed at the relay's
caller side. ACK (with the answer, for a delayed offer), BYE and CANCEL cross over. A
REFER from the device is the edge's to answer (202, then NOTIFY ``SIP/2.0 200 OK``); the
transfer is then taken as done and the edge hangs up both sides.

Not modelled: 2xx retransmission toward the caller (the flows are reliable), re-INVITEs
crossing the bridge (each side's re-INVITE is answered by the edge with the SDP it
already has, so media stays where it is), PRACK/100rel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import build_response, new_tag
from realtime_voice.sip.sdp import SdpError
from realtime_voice.sip.uri import NameAddr, SipParseError, SipUri
from realtime_voice.testing.sip_edge.calls import EdgeCall
from realtime_voice.testing.sip_edge.dialog import EDGE_ALLOW, Dialog
from realtime_voice.testing.sip_edge.flows import FlowClosed, SipFlow, TransactionTimeout
from realtime_voice.testing.sip_edge.registrar import Binding
from realtime_voice.testing.sip_edge.relay import MediaRelay, rewrite_sdp

__all__ = ["Bridge", "BridgeState", "CallFactory", "Spawn"]

log = logging.getLogger(__name__)

BridgeState = Literal["starting", "ringing", "answered", "terminated"]
CallFactory = Callable[[Binding, bytes | None, str], EdgeCall]
"""Makes, registers and starts the device-side call: (binding, offer, from number)."""
Spawn = Callable[[Coroutine[Any, Any, Any]], None]
"""Runs a coroutine as a task the edge owns (and cancels on close)."""


class Bridge:
    """One bridged call: the caller's dialog (the edge is its UAS) and the device's call.

    Args:
        caller_flow: the caller's connection.
        invite: the caller's INVITE.
        binding: the device's registration.
        make_call: creates the device-side `EdgeCall`.
        spawn: runs the bridge's background work.
        host: the address the relay listens on.

    Attributes:
        caller_invite: the caller's INVITE.
        device_call: the device-side call, once made.
        relay: the media relay, once open.
        transfers: the Refer-To of each REFER the device sent.
        caller_requests: every request the caller sent in the dialog.
        state: ``starting``, ``ringing``, ``answered`` or ``terminated``.
    """

    def __init__(self, *, caller_flow: SipFlow, invite: SipRequest, binding: Binding,
                 make_call: CallFactory, spawn: Spawn, host: str) -> None:
        self.caller_invite = invite
        self.caller_flow = caller_flow
        self.binding = binding
        self.device_call: EdgeCall | None = None
        self.relay: MediaRelay | None = None
        self.transfers: list[str] = []
        self.caller_requests: list[SipRequest] = []
        self.state: BridgeState = "starting"
        self._make_call, self._spawn, self._host = make_call, spawn, host
        try:
            contacts = invite.contacts
        except SipParseError:
            contacts = []
        to = invite.to
        self.caller = Dialog(
            flow=caller_flow, call_id=invite.call_id,
            local=NameAddr(to.uri, to.display_name, {**to.params, "tag": new_tag()}),
            remote=invite.from_,
            remote_target=contacts[0].uri if contacts else invite.from_.uri,
            route_set=invite.headers.values("Record-Route"),
        )
        self._final_sent = False
        self._cancelled = False
        self._caller_sdp: bytes = b""  # what the caller was last given (the device's side)
        self._done = asyncio.Event()

    @property
    def call_id(self) -> str:
        """The caller leg's Call-ID."""
        return self.caller.call_id

    def start(self) -> None:
        """Answer 100 and set the device leg up in the background."""
        self.caller_flow.send(build_response(self.caller_invite, 100))
        self._spawn(self._run())

    async def _run(self) -> None:
        try:
            self.relay = await MediaRelay.open(self._host)
        except OSError as error:
            log.warning("sip edge: no relay ports: %s", error)
            self._final(503)
            return
        offer: bytes | None = None
        if self.caller_invite.body:
            try:
                offer, target = rewrite_sdp(self.caller_invite.body, self._host,
                                            self.relay.port("device"),
                                            self.relay.rtcp_port("device"))
            except SdpError as error:
                log.info("sip edge: caller offer refused: %s", error)
                self._final(488)
                return
            self.relay.set_target("caller", target)
        if self._cancelled:
            self._finish()
            return
        from_user = "anonymous"
        caller_uri = self.caller_invite.from_.uri
        if isinstance(caller_uri, SipUri) and caller_uri.user:
            from_user = caller_uri.user
        call = self._make_call(self.binding, offer, from_user)
        call.on_response = self._device_response
        call.on_request = self._device_request
        self.device_call = call
        self.state = "ringing"

    def _final(self, status: int) -> None:
        if not self._final_sent:
            self._final_sent = True
            self.caller_flow.send(build_response(self.caller_invite, status,
                                                 to_tag=self.caller.local_tag))
        self._finish()

    def _finish(self) -> None:
        self.state = "terminated"
        if self.relay is not None:
            self.relay.close()
        self._done.set()

    async def wait_done(self, timeout_s: float = 5.0) -> None:
        """Until both sides are over."""
        await asyncio.wait_for(self._done.wait(), timeout_s)

    # --- the device side -------------------------------------------------------------

    def _for_caller(self, body: bytes) -> bytes:
        """The device's SDP, pointed at the relay's caller side (its target noted)."""
        if not body or self.relay is None:
            return body
        try:
            rewritten, target = rewrite_sdp(body, self._host, self.relay.port("caller"),
                                            self.relay.rtcp_port("caller"))
        except SdpError as error:
            log.info("sip edge: device SDP not relayable: %s", error)
            return body
        self.relay.set_target("device", target)
        return rewritten

    def _for_device(self, body: bytes) -> bytes:
        """The caller's SDP, pointed at the relay's device side (its target noted)."""
        if not body or self.relay is None:
            return body
        try:
            rewritten, target = rewrite_sdp(body, self._host, self.relay.port("device"),
                                            self.relay.rtcp_port("device"))
        except SdpError as error:
            log.info("sip edge: caller SDP not relayable: %s", error)
            return body
        self.relay.set_target("caller", target)
        return rewritten

    def _device_response(self, call: EdgeCall, response: SipResponse) -> None:
        if response.status == 100:
            return
        if self._final_sent:  # the caller gave up first (CANCEL) and the device answered
            if 200 <= response.status < 300:
                self._spawn(self._hang_up_device_after_ack(call))
            return
        body = self._for_caller(response.body)
        headers = [("Contact", self.caller.contact()), ("Allow", EDGE_ALLOW)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
            self._caller_sdp = body
        self.caller_flow.send(build_response(self.caller_invite, response.status,
                                             response.reason, to_tag=self.caller.local_tag,
                                             headers=headers, body=body))
        if response.status >= 300:
            self._final_sent = True
            self._finish()
        elif response.status >= 200:
            self._final_sent = True
            self.state = "answered"

    async def _hang_up_device_after_ack(self, call: EdgeCall) -> None:
        await call.ack()
        await self._quietly(call.bye())

    def _device_request(self, call: EdgeCall, request: SipRequest) -> None:
        if request.method == "BYE":
            if self.state != "terminated":
                self._spawn(self._bye_caller())
            self._finish()
        elif request.method == "REFER":
            refer_to = request.headers.get("Refer-To")
            if refer_to is not None:
                self.transfers.append(refer_to)
                self._spawn(self._transferred(call))

    async def _transferred(self, call: EdgeCall) -> None:
        """The transfer "happened": after the NOTIFY, hang up both sides."""
        if call.notify_transactions:
            await self._quietly(call.notify_transactions[-1].wait_final())
        await self._quietly(call.bye())
        await self._bye_caller()
        self._finish()

    async def _bye_caller(self) -> None:
        await self._quietly(self.caller.transact(self.caller.new_request("BYE")))

    @staticmethod
    async def _quietly(awaitable: Coroutine[Any, Any, Any]) -> None:
        """Await a request to a peer that may already be gone; failures are only logged."""
        try:
            await awaitable
        except (FlowClosed, TransactionTimeout) as error:
            log.info("sip edge: %s", error)

    # --- the caller side -------------------------------------------------------------

    def handle_caller_request(self, request: SipRequest) -> None:
        """A request on the caller's dialog (or its CANCEL), relayed or answered."""
        if len(self.caller_requests) < 1000:
            self.caller_requests.append(request)
        method, call = request.method, self.device_call
        if method == "ACK":
            if self.state == "answered" and call is not None:
                self._spawn(call.ack(self._for_device(request.body)))
        elif method == "CANCEL":
            self.caller_flow.send(build_response(request, 200, to_tag=self.caller.local_tag))
            if not self._final_sent:
                self._cancelled = True
                self._final(487)
                if call is not None:
                    self._spawn(self._quietly(call.cancel()))
        elif method == "BYE":
            self.caller_flow.send(build_response(request, 200))
            if call is not None and self.state != "terminated":
                self._spawn(self._quietly(call.bye()))
            self._finish()
        elif method in ("INVITE", "UPDATE"):
            headers = [("Contact", self.caller.contact()), ("Allow", EDGE_ALLOW)]
            if self._caller_sdp:
                headers.append(("Content-Type", "application/sdp"))
            self.caller_flow.send(build_response(request, 200, headers=headers,
                                                 body=self._caller_sdp))
        elif method == "REFER":
            self.caller_flow.send(build_response(request, 405, headers=[("Allow", EDGE_ALLOW)]))
        else:
            self.caller_flow.send(build_response(request, 200))

    def close(self) -> None:
        """Release the relay (the edge is closing)."""
        with contextlib.suppress(Exception):
            self._finish()
