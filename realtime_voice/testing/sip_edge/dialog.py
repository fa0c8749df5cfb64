"""One side of a dialog as the fake edge sees it: who we are, who they are, how to reach them.

Both the scripted calls (the edge is the UAC toward the device) and the B2BUA's caller
leg (the edge is the UAS toward the caller) send in-dialog requests the same way: new
branch, our CSeq counting up, From = our side, To = theirs, Request-URI = their Contact
(RFC 3261 §12.2.1.1), with the route set as Route headers, over the flow they use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from realtime_voice.sip.headers import Headers, SipRequest, SipResponse
from realtime_voice.sip.uri import NameAddr, Uri
from realtime_voice.testing.sip_edge.flows import ClientTransaction, SipFlow

__all__ = ["EDGE_ALLOW", "Dialog"]

EDGE_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE, PRACK"
"""The methods the fake edge accepts."""


@dataclass
class Dialog:
    """Our view of one dialog.

    Attributes:
        flow: the connection the peer is reached on.
        call_id: the Call-ID.
        local: our From/To value, with our tag.
        remote: theirs (tag None until they gave one).
        remote_target: where in-dialog requests go (their Contact).
        route_set: Route values, in order.
        cseq: our last CSeq number.
    """

    flow: SipFlow
    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: Uri
    route_set: list[str] = field(default_factory=list)
    cseq: int = 0

    @property
    def local_tag(self) -> str | None:
        """Our tag."""
        return self.local.tag

    @property
    def remote_tag(self) -> str | None:
        """Their tag."""
        return self.remote.tag

    def contact(self) -> str:
        """Our Contact: the edge's address on this flow."""
        host, port = self.flow.local
        transport = ";transport=tls" if self.flow.tls else ";transport=tcp"
        return f"<sip:edge@{host}:{port}{transport}>"

    def new_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        cseq: int | None = None,
    ) -> SipRequest:
        """A request in this dialog (CSeq counts up unless ``cseq`` is given, as for ACK)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        fields = Headers([
            ("Via", self.flow.via()), ("Max-Forwards", "70"), ("From", str(self.local)),
            ("To", str(self.remote)), ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}"),
        ])
        for route in self.route_set:
            fields.add("Route", route)
        if method in ("INVITE", "UPDATE", "REFER", "NOTIFY", "SUBSCRIBE"):
            fields.add("Contact", self.contact())
        for name, value in headers:
            fields.add(name, value)
        if body:
            fields.add("Content-Type", content_type or "application/sdp")
        return SipRequest(method, self.remote_target, headers=fields, body=body)

    def send(self, request: SipRequest) -> ClientTransaction:
        """Send ``request`` on the flow as a client transaction."""
        return self.flow.start_transaction(request)

    async def transact(self, request: SipRequest, timeout_s: float = 5.0) -> SipResponse:
        """Send ``request`` and return its final response."""
        return await self.send(request).wait_final(timeout_s)

    def matches(self, request: SipRequest) -> bool:
        """Whether ``request`` (from the peer) belongs to this dialog: tags swapped."""
        return (request.call_id == self.call_id and request.to.tag == self.local_tag
                and (self.remote_tag is None or request.from_.tag == self.remote_tag))
