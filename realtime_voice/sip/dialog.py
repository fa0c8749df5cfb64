"""SIP dialogs (RFC 3261 §12): the state two user agents share for one call, and the
requests built inside it.

Sans-I/O. A dialog is made from the INVITE we answered (`Dialog.from_uas`) or from the
2xx to an INVITE we sent (`Dialog.from_uac`); it then builds every in-dialog request
(`Dialog.request`: BYE, re-INVITE, UPDATE, REFER, INFO, ACK) with the right Request-URI,
Route set, tags and CSeq, and checks every in-dialog request the peer sends
(`Dialog.accept_remote_cseq`). The user agent sends what it builds over its flow.

The "sent-by" of our Via is whatever the transport reports as its local address: behind
a NAT that is a private address, and RingCentral copes through ``rport`` and ``alias``
(RFC 3581, RFC 5923), which every Via we write carries (docs/RINGCENTRAL_SIP.md §3).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from realtime_voice.sip.headers import Headers, SipRequest, SipResponse
from realtime_voice.sip.message import new_branch, new_tag
from realtime_voice.sip.uri import NameAddr, SipParseError, Uri

__all__ = ["Dialog", "DialogError", "LocalContact", "via_value"]

_MAX_FORWARDS = "70"
_MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: the initial CSeq must be below 2**31


class DialogError(SipParseError):
    """A request does not fit its dialog (an old CSeq, a missing tag)."""


@dataclass(frozen=True, slots=True)
class LocalContact:
    """Where our side of a flow is, as the headers we write must say it.

    Attributes:
        host: the local address of the flow (sent-by and Contact host).
        port: its local port.
        transport: ``TLS``, ``TCP`` or ``UDP``.
        user: the user part of our Contact (the device's SIP username).
        instance_id: our RFC 5626 ``+sip.instance`` URN (``urn:uuid:...``), if any.
    """

    host: str
    port: int
    transport: str
    user: str | None = None
    instance_id: str | None = None

    def contact(self, *, outbound: bool = True) -> str:
        """Our Contact header value: ``<sip:user@host:port;transport=TLS;ob>``."""
        user = f"{self.user}@" if self.user else ""
        params = f";transport={self.transport}" + (";ob" if outbound else "")
        return f"<sip:{user}{self.host}:{self.port}{params}>"


def via_value(local: LocalContact, branch: str | None = None) -> str:
    """One Via value for a request we send: ``SIP/2.0/TLS host:port;rport;branch=...;alias``."""
    return (f"SIP/2.0/{local.transport} {local.host}:{local.port};rport;"
            f"branch={branch or new_branch()};alias")


def _initial_cseq() -> int:
    return secrets.randbelow(2**16) + 1


@dataclass
class Dialog:
    """One dialog, either side.

    Attributes:
        call_id: the Call-ID.
        local_tag: our tag (To tag on a dialog we answered, From tag on one we started).
        remote_tag: the peer's tag.
        local_uri: our address (From of our requests).
        remote_uri: the peer's address (To of our requests).
        remote_target: the peer's Contact: the Request-URI of our requests.
        route_set: the Route headers our requests carry, in order.
        local_cseq: the CSeq of our last request (the next one adds one).
        remote_cseq: the highest CSeq the peer has used, or None before its first.
        local_name: the display name we put in From, if any.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: Uri
    remote_uri: Uri
    remote_target: Uri
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = field(default_factory=_initial_cseq)
    remote_cseq: int | None = None
    local_name: str | None = None
    remote_name: str | None = None

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag): what identifies the dialog."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uas(cls, invite: SipRequest, *, local_tag: str | None = None) -> Dialog:
        """The dialog of an INVITE we answer (RFC 3261 §12.1.1).

        Raises:
            DialogError: the INVITE has no From tag or no usable Contact.
        """
        from_ = invite.from_
        if not from_.tag:
            raise DialogError("INVITE without a From tag")
        contacts = invite.contacts
        if not contacts:
            raise DialogError("INVITE without a Contact")
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag or invite.to.tag or new_tag(),
            remote_tag=from_.tag,
            local_uri=invite.to.uri,
            remote_uri=from_.uri,
            remote_target=contacts[0].uri,
            # UAS: the Record-Route values in order (§12.1.1).
            route_set=list(invite.headers.values("Record-Route")),
            remote_cseq=invite.cseq.number,
            remote_name=from_.display_name,
        )

    @classmethod
    def from_uac(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a 2xx (or a 1xx with a To tag) to our INVITE creates (§12.1.2).

        Raises:
            DialogError: the response has no To tag or no Contact.
        """
        to = response.to
        if not to.tag:
            raise DialogError(f"{response.status} without a To tag")
        contacts = response.contacts
        if not contacts:
            raise DialogError(f"{response.status} without a Contact")
        from_ = invite.from_
        return cls(
            call_id=invite.call_id,
            local_tag=from_.tag or "",
            remote_tag=to.tag,
            local_uri=from_.uri,
            remote_uri=to.uri,
            remote_target=contacts[0].uri,
            # UAC: the Record-Route values in reverse (§12.1.2).
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_cseq=invite.cseq.number,
            local_name=from_.display_name,
            remote_name=to.display_name,
        )

    def matches(self, message: SipRequest | SipResponse) -> bool:
        """Whether an in-dialog request from the peer belongs here."""
        try:
            if message.call_id != self.call_id:
                return False
            return message.from_.tag == self.remote_tag and message.to.tag == self.local_tag
        except SipParseError:
            return False

    def accept_remote_cseq(self, request: SipRequest) -> None:
        """Check and record the CSeq of a request from the peer (§12.2.2).

        ACK and CANCEL reuse their INVITE's CSeq and are not checked.

        Raises:
            DialogError: the CSeq is lower than one the peer already used (answer 500).
        """
        if request.method in ("ACK", "CANCEL"):
            return
        number = request.cseq.number
        if self.remote_cseq is not None and number <= self.remote_cseq:
            # Equal is a retransmission the transaction layer already absorbed; reaching
            # here, it is a new request reusing a number: out of order.
            raise DialogError(f"CSeq {number} not above {self.remote_cseq}")
        self.remote_cseq = number

    def update_target(self, message: SipRequest | SipResponse) -> None:
        """A target refresh (re-INVITE, UPDATE or their 2xx) may move the peer's Contact."""
        try:
            contacts = message.contacts
        except SipParseError:
            return
        if contacts:
            self.remote_target = contacts[0].uri

    def request(
        self,
        method: str,
        local: LocalContact,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
        branch: str | None = None,
    ) -> SipRequest:
        """A request inside this dialog (§12.2.1.1).

        Args:
            method: the method.
            local: our side of the flow the request goes out on.
            headers: extra headers (Refer-To, Event, Session-Expires...).
            body: the body.
            content_type: its type (required with a body).
            cseq: a CSeq to reuse (ACK reuses the INVITE's); else the next one.
            branch: the Via branch; a fresh one by default.
        """
        if cseq is None:
            self.local_cseq = self.local_cseq + 1 if self.local_cseq < _MAX_CSEQ else 1
            cseq = self.local_cseq
        fields: list[tuple[str, str]] = [("Via", via_value(local, branch))]
        fields += [("Route", route) for route in self.route_set]
        fields += [
            ("Max-Forwards", _MAX_FORWARDS),
            ("From", str(NameAddr(self.local_uri, self.local_name, {"tag": self.local_tag}))),
            ("To", str(NameAddr(self.remote_uri, None, {"tag": self.remote_tag}))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            fields.append(("Contact", local.contact()))
        fields += list(headers)
        if body:
            fields.append(("Content-Type", content_type or "application/sdp"))
        return SipRequest(method, self.remote_target, headers=Headers(fields), body=body)

