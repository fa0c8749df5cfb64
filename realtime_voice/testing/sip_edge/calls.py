"""Scripted calls the fake edge pushes to a registered device, over the device's own flow.

docs/RINGCENTRAL_SIP.md §3: RingCentral sends the inbound INVITE back over the TLS
connection the device registered on, to the registered Contact, with ``Alert-Info: Auto
Answer`` and ``Call-Info: <...>;answer-after=0`` when the call is to be answered at once.
Call-queue INVITEs arrive without SDP (delayed offer: the device's 200 is the offer and
the ACK carries the answer). In the dialog RingCentral may re-INVITE (hold, rekey,
session refresh) or UPDATE, and BYE; the device may BYE, or REFER (blind transfer), which
RingCentral accepts with 202 and reports with a NOTIFY whose sipfrag is ``SIP/2.0 200 OK``.

`EdgeCall` is the edge's UAC side of one such call: the test drives it (``ack``,
``reinvite``, ``bye``...) and waits for what the device does (``wait_bye``,
``wait_refer``). Requests from the device are answered here, as RingCentral would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Literal

from realtime_voice.sip.headers import Headers, SipRequest, SipResponse
from realtime_voice.sip.message import build_response, new_call_id, new_tag
from realtime_voice.sip.uri import NameAddr, SipParseError, SipUri, parse_uri
from realtime_voice.testing.sip_edge.dialog import EDGE_ALLOW, Dialog
from realtime_voice.testing.sip_edge.flows import ClientTransaction, SipFlow

__all__ = ["CallState", "EdgeCall"]

log = logging.getLogger(__name__)

CallState = Literal["calling", "early", "confirmed", "terminated"]

_MAX_RECORDED = 1000
SIPFRAG_OK = b"SIP/2.0 200 OK"
"""The NOTIFY body that reports a transfer as done (what RingCentral's SDK waits for)."""


class EdgeCall:
    """One call from the edge to a device (the edge is the UAC).

    Made by `FakeRingCentralEdge.invite`; the INVITE is sent by `start`.

    Args:
        flow: the device's registered connection.
        target: the registered Contact URI (the Request-URI).
        user: the device's AOR user.
        realm: the SIP domain for From/To.
        offer: the SDP offer, or None for a delayed-offer INVITE.
        auto_answer: add ``Alert-Info: Auto Answer`` and ``Call-Info: ...;answer-after=0``.
        from_number: the caller's number (From user).
        extra_headers: more INVITE header fields.
        record_route: add a Record-Route naming the edge.

    Attributes:
        responses: every response to the initial INVITE, in order.
        requests_from_device: every in-dialog request the device sent, in order.
        refer_to: the Refer-To value of each REFER received.
        notify_transactions: the NOTIFYs sent after REFERs (their responses inside).
        local_sdp: the SDP the edge last sent (offer or answer), or None.
        remote_sdp: the SDP the device last sent, or None.
        state: ``calling``, ``early``, ``confirmed`` or ``terminated``.
        on_response: hook called with each response to the initial INVITE.
        on_request: hook called with each device request, after the edge answered it.
    """

    def __init__(
        self,
        *,
        flow: SipFlow,
        target: SipUri,
        user: str,
        realm: str,
        offer: bytes | None,
        auto_answer: bool = True,
        from_number: str = "+15550100",
        extra_headers: Iterable[tuple[str, str]] = (),
        record_route: bool = False,
    ) -> None:
        self.flow = flow
        self.user = user
        self.offer = offer
        self.dialog = Dialog(
            flow=flow, call_id=new_call_id(), remote_target=parse_uri(str(target)),
            local=NameAddr(parse_uri(f"sip:{from_number}@{realm}"), None, {"tag": new_tag()}),
            remote=NameAddr(parse_uri(f"sip:{user}@{realm}")),
        )
        headers: list[tuple[str, str]] = [("Allow", EDGE_ALLOW), ("Supported", "timer")]
        if record_route:
            host, port = flow.local
            transport = "tls" if flow.tls else "tcp"
            headers.append(("Record-Route", f"<sip:{host}:{port};transport={transport};lr>"))
        if auto_answer:
            host, _ = flow.local
            headers += [("Alert-Info", "Auto Answer"),
                        ("Call-Info", f"<sip:{host}>;answer-after=0")]
        headers += list(extra_headers)
        self.invite_request = self.dialog.new_request("INVITE", body=offer or b"",
                                                      headers=headers)
        self.local_sdp: bytes | None = offer
        self.remote_sdp: bytes | None = None
        self.state: CallState = "calling"
        self.responses: list[SipResponse] = []
        self.requests_from_device: list[SipRequest] = []
        self.refer_to: list[str] = []
        self.notify_transactions: list[ClientTransaction] = []
        self.on_response: Callable[[EdgeCall, SipResponse], None] | None = None
        self.on_request: Callable[[EdgeCall, SipRequest], None] | None = None
        self._invite_tx: ClientTransaction | None = None
        self._acks: dict[int, SipRequest] = {}  # CSeq number -> our ACK (resent on 2xx repeats)
        self._arrived = asyncio.Event()
        self._cursors: dict[str, int] = {}

    @property
    def call_id(self) -> str:
        """The Call-ID of this call."""
        return self.dialog.call_id

    def start(self) -> None:
        """Send the INVITE."""
        self._invite_tx = self.dialog.send(self.invite_request)
        self._invite_tx.on_response = self._initial_response

    # --- responses -------------------------------------------------------------------

    def _initial_response(self, response: SipResponse) -> None:
        self.responses.append(response)
        self._invite_response(self.invite_request, response, initial=True)
        if self.on_response is not None:
            self.on_response(self, response)

    def _invite_response(self, request: SipRequest, response: SipResponse, *,
                         initial: bool) -> None:
        cseq = request.cseq.number
        if response.status < 200:
            if initial and response.status > 100 and response.to.tag and self.state == "calling":
                self.dialog.remote = response.to
                self.state = "early"
            return
        if response.status >= 300:
            self._ack_failure(request, response)
            if initial:
                self.state = "terminated"
            return
        if cseq in self._acks:  # the 2xx again: our ACK was lost or crossed it
            self.flow.send(self._acks[cseq])
            return
        if initial and self.state in ("calling", "early"):
            self.dialog.remote = response.to
            try:
                contacts = response.contacts
            except SipParseError:
                contacts = []
            if contacts:
                self.dialog.remote_target = contacts[0].uri
            self.dialog.route_set = list(reversed(response.headers.values("Record-Route")))
            self.state = "confirmed"
        if response.body:
            self.remote_sdp = response.body

    def _ack_failure(self, request: SipRequest, response: SipResponse) -> None:
        """ACK a non-2xx final: same branch, part of the INVITE transaction (RFC 3261 §17.1.1.3)."""
        headers = Headers([("Via", request.headers.values("Via")[0]), ("Max-Forwards", "70"),
                           ("From", request.headers.get("From") or ""),
                           ("To", response.headers.get("To") or ""),
                           ("Call-ID", request.call_id),
                           ("CSeq", f"{request.cseq.number} ACK")])
        for route in request.headers.values("Route"):
            headers.add("Route", route)
        self.flow.send(SipRequest("ACK", request.uri, headers=headers))

    async def wait_final(self, timeout_s: float = 5.0) -> SipResponse:
        """The final response to the INVITE (the device's 200, 486, 487...)."""
        if self._invite_tx is None:
            raise RuntimeError("the call was not started")
        return await self._invite_tx.wait_final(timeout_s)

    async def ack(self, body: bytes = b"") -> None:
        """ACK the 2xx (``body``: the answer, for a delayed-offer INVITE).

        Waits for the final response first; a non-2xx was already ACKed and is left alone.
        """
        final = await self.wait_final()
        if final.status >= 300:
            return
        self._send_ack(self.invite_request.cseq.number, body)

    def _send_ack(self, cseq: int, body: bytes) -> None:
        ack = self.dialog.new_request("ACK", body=body, cseq=cseq)
        self._acks[cseq] = ack
        while len(self._acks) > 64:  # only recent 2xx can still be retransmitted
            del self._acks[next(iter(self._acks))]
        if body:
            self.local_sdp = body
        self.flow.send(ack)

    async def cancel(self, timeout_s: float = 5.0) -> SipResponse:
        """CANCEL the INVITE (before its final response); returns the CANCEL's response.

        The INVITE's own final (487 from a correct device) is `wait_final`'s, and is ACKed.
        """
        invite = self.invite_request
        headers = Headers([("Via", invite.headers.values("Via")[0]), ("Max-Forwards", "70"),
                           ("From", invite.headers.get("From") or ""),
                           ("To", invite.headers.get("To") or ""), ("Call-ID", invite.call_id),
                           ("CSeq", f"{invite.cseq.number} CANCEL")])
        for route in invite.headers.values("Route"):
            headers.add("Route", route)
        return await self.flow.start_transaction(
            SipRequest("CANCEL", invite.uri, headers=headers)).wait_final(timeout_s)

    async def reinvite(self, offer: bytes | None, *, ack_body: bytes | None = None,
                       timeout_s: float = 5.0) -> SipResponse:
        """A re-INVITE (hold, new crypto, session refresh) and its ACK.

        Args:
            offer: the new offer, or None for an offerless re-INVITE (the device's 2xx
                then carries an offer and the ACK the answer).
            ack_body: the ACK's answer for an offerless re-INVITE; default the edge's
                last SDP.
        """
        request = self.dialog.new_request("INVITE", body=offer or b"",
                                          headers=[("Allow", EDGE_ALLOW)])
        transaction = self.dialog.send(request)
        transaction.on_response = lambda r: self._invite_response(request, r, initial=False)
        final = await transaction.wait_final(timeout_s)
        if final.status < 300:
            if offer is not None:
                self.local_sdp = offer
            answer = b""
            if offer is None and final.body:
                answer = ack_body if ack_body is not None else (self.local_sdp or b"")
            self._send_ack(request.cseq.number, answer)
        return final

    async def update(self, offer: bytes | None, timeout_s: float = 5.0) -> SipResponse:
        """An UPDATE (RFC 3311), with an offer or bare (a session refresh)."""
        final = await self.request("UPDATE", offer or b"", "application/sdp",
                                   timeout_s=timeout_s)
        if final.status < 300 and offer is not None:
            self.local_sdp = offer
            if final.body:
                self.remote_sdp = final.body
        return final

    async def bye(self, timeout_s: float = 5.0) -> SipResponse:
        """Hang up from the edge's side."""
        self.state = "terminated"
        return await self.request("BYE", timeout_s=timeout_s)

    async def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                      *, headers: Iterable[tuple[str, str]] = (),
                      timeout_s: float = 5.0) -> SipResponse:
        """Any other in-dialog request (OPTIONS, INFO, MESSAGE, NOTIFY...); its final response."""
        request = self.dialog.new_request(method, body=body, content_type=content_type,
                                          headers=headers)
        return await self.dialog.transact(request, timeout_s)

    # --- requests from the device ----------------------------------------------------

    def handle_request(self, request: SipRequest) -> None:
        """Answer one in-dialog request from the device, as RingCentral would."""
        if len(self.requests_from_device) < _MAX_RECORDED:
            self.requests_from_device.append(request)
        method = request.method
        if method == "ACK":
            if request.body:
                self.remote_sdp = request.body
        elif method == "BYE":
            self.state = "terminated"
            self.flow.send(build_response(request, 200))
        elif method == "REFER":
            self._refer(request)
        elif method in ("INVITE", "UPDATE"):
            self._offer(request)
        elif method == "CANCEL":  # re-INVITEs are answered at once: nothing left to cancel
            self.flow.send(build_response(request, 481))
        else:  # OPTIONS, INFO, MESSAGE, NOTIFY, PRACK: accepted, content ignored
            self.flow.send(build_response(request, 200, headers=[("Allow", EDGE_ALLOW)]))
        self._arrived.set()
        self._arrived = asyncio.Event()
        if self.on_request is not None:
            self.on_request(self, request)

    def _offer(self, request: SipRequest) -> None:
        """A device re-INVITE or UPDATE: keep our media as it is, answer with our SDP."""
        if request.body:
            self.remote_sdp = request.body
        body = self.local_sdp or b""
        headers = [("Contact", self.dialog.contact()), ("Allow", EDGE_ALLOW)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.flow.send(build_response(request, 200, headers=headers, body=body))

    def _refer(self, request: SipRequest) -> None:
        refer_to = request.headers.get("Refer-To")
        if refer_to is None:
            self.flow.send(build_response(request, 400, "Missing Refer-To"))
            return
        self.refer_to.append(refer_to)
        self.flow.send(build_response(request, 202,
                                      headers=[("Contact", self.dialog.contact())]))
        notify = self.dialog.new_request(
            "NOTIFY", body=SIPFRAG_OK, content_type="message/sipfrag;version=2.0",
            headers=[("Event", "refer"),
                     ("Subscription-State", "terminated;reason=noresource")])
        if len(self.notify_transactions) < _MAX_RECORDED:
            self.notify_transactions.append(self.dialog.send(notify))

    async def _wait_request(self, method: str, timeout_s: float) -> SipRequest:
        """The next ``method`` request from the device not yet returned by this wait."""
        async def wait() -> SipRequest:
            while True:
                seen = [r for r in self.requests_from_device if r.method == method]
                cursor = self._cursors.get(method, 0)
                if len(seen) > cursor:
                    self._cursors[method] = cursor + 1
                    return seen[cursor]
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(wait(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no {method} from the device within {timeout_s} s") from None

    async def wait_bye(self, timeout_s: float = 5.0) -> SipRequest:
        """The device hung up: its BYE (the edge answered 200)."""
        return await self._wait_request("BYE", timeout_s)

    async def wait_refer(self, timeout_s: float = 5.0) -> SipRequest:
        """The device transferred: its REFER (answered 202, then NOTIFY sipfrag 200)."""
        return await self._wait_request("REFER", timeout_s)

    async def wait_request(self, method: str, timeout_s: float = 5.0) -> SipRequest:
        """The next in-dialog ``method`` request from the device (INFO, re-INVITE...)."""
        return await self._wait_request(method, timeout_s)
