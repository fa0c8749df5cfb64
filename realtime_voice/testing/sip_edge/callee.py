"""The far end of an outbound call placed through the fake edge: a scripted callee.

RingCentral's proxy challenges a device's INVITE with 407 (the same digest as REGISTER),
then the PSTN side rings: a 183 with SDP (early media), and a 200, a 486, or nothing at
all until the caller gives up with CANCEL (docs/RINGCENTRAL_SIP.md §3, outbound). A
`Callee` registered on the edge for a number plays one of those scripts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Literal

from realtime_voice.sip import sdp as sdp_text
from realtime_voice.sip.auth import DigestServer, Verdict, parse_authorization
from realtime_voice.sip.headers import SipRequest
from realtime_voice.sip.message import build_response, new_tag
from realtime_voice.sip.sdp_model import SdpError
from realtime_voice.sip.sdp_negotiation import DEFAULT_CODECS, PCMU, answer, generate_key
from realtime_voice.sip.uri import SipParseError
from realtime_voice.testing.sip_edge.dialog import EDGE_ALLOW
from realtime_voice.testing.sip_edge.flows import SipFlow

__all__ = ["Callee", "CalleeScript"]

log = logging.getLogger(__name__)

CalleeScript = Literal["answer", "busy", "no_answer", "fail"]


@dataclass
class Callee:
    """A number the edge answers for outbound calls.

    Attributes:
        script: what happens: answered, 486 Busy Here, rings until CANCEL, 503.
        credentials: authorization ID -> password for the 407 challenge.
        early_media: send a 183 with SDP before the final response.
        rtp_port: the port written in the callee's SDP.
        invites: every INVITE received (the first unauthenticated, then the answer).
        requests: in-dialog requests after the answer (ACK, BYE...).
    """

    script: CalleeScript = "answer"
    credentials: dict[str, str] = field(default_factory=dict)
    early_media: bool = True
    rtp_port: int = 45000
    realm: str = "sip.ringcentral.com"
    invites: list[SipRequest] = field(default_factory=list)
    requests: list[SipRequest] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    bye: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    _digest: DigestServer | None = None
    _pending: SipRequest | None = None
    _tag: str = field(default_factory=new_tag)

    def __post_init__(self) -> None:
        self._digest = DigestServer(self.realm, qop=())

    def handle(self, flow: SipFlow, request: SipRequest) -> None:
        """Answer one request of the call (INVITE, ACK, CANCEL, BYE...)."""
        if request.method == "INVITE":
            self._invite(flow, request)
        elif request.method == "CANCEL":
            pending = self._pending
            flow.send(build_response(request, 200 if pending else 481))
            if pending is not None:
                self._pending = None
                flow.send(build_response(pending, 487, to_tag=self._tag))
                self.cancelled.set()
        else:
            self.requests.append(request)
            if request.method != "ACK":
                flow.send(build_response(request, 200))
            if request.method == "BYE":
                self.bye.set()
            elif request.method == "ACK":
                self.acked.set()

    def _invite(self, flow: SipFlow, invite: SipRequest) -> None:
        self.invites.append(invite)
        assert self._digest is not None
        credentials = invite.headers.get("Proxy-Authorization")
        if credentials is None:
            flow.send(build_response(invite, 407, to_tag=new_tag(), headers=[
                ("Proxy-Authenticate", self._digest.challenge())]))
            return
        try:
            username = parse_authorization(credentials, "Proxy-Authorization").username
            verdict = self._digest.verify(credentials, method="INVITE", username=username,
                                          password=self.credentials.get(username, ""))
        except SipParseError:
            verdict = Verdict.WRONG
        if verdict is not Verdict.OK:
            flow.send(build_response(invite, 403, to_tag=new_tag()))
            return
        flow.send(build_response(invite, 100))
        if self.script == "busy":
            flow.send(build_response(invite, 486, to_tag=self._tag))
            return
        if self.script == "fail":
            flow.send(build_response(invite, 503, to_tag=self._tag))
            return
        body = self._answer(invite)
        contact = [("Contact", f"<sip:callee@{flow.local[0]}:{flow.local[1]};transport=tls>")]
        if self.early_media and body:
            flow.send(build_response(invite, 183, to_tag=self._tag, headers=[
                *contact, ("Content-Type", "application/sdp")], body=body))
        else:
            flow.send(build_response(invite, 180, to_tag=self._tag, headers=contact))
        if self.script == "no_answer":
            self._pending = invite
            return
        flow.send(build_response(invite, 200, to_tag=self._tag, headers=[
            *contact, ("Allow", EDGE_ALLOW), ("Content-Type", "application/sdp")], body=body))

    def _answer(self, invite: SipRequest) -> bytes:
        try:
            ours = answer(sdp_text.parse(invite.body), address="127.0.0.1", port=self.rtp_port,
                          key=generate_key(), codecs=(PCMU, *DEFAULT_CODECS))
        except SdpError as exc:
            log.info("callee: cannot answer the offer: %s", exc)
            return b""
        return sdp_text.serialize(ours.sdp).encode()
