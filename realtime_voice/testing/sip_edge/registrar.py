"""The fake edge's registrar: RingCentral-style digest challenges and one binding per user.

docs/RINGCENTRAL_SIP.md §3: the device sends REGISTER over its TLS connection with
``Contact: <sip:user@ip:port;transport=TLS;ob>;reg-id=1;+sip.instance="<urn:uuid:...>"``
and ``Expires: 3600``; the edge answers 401 with a Digest challenge (RingCentral's SDK
answers it RFC 2069 style, without qop), then 200. Only the most recent registration of
a user receives calls, so a binding is replaced, never added to.

Bindings are keyed by the AOR user (the To URI's user part, the RingCentral username);
``credentials`` are keyed by the authorization ID (the digest username), as they differ on
RingCentral.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from realtime_voice.sip.auth import AuthError, DigestServer, Verdict, parse_authorization
from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import build_response, new_tag
from realtime_voice.sip.uri import NameAddr, SipParseError, SipUri, unquote
from realtime_voice.testing.sip_edge.flows import SipFlow

__all__ = ["Binding", "EdgeKnobs", "Registrar", "Registration"]

log = logging.getLogger(__name__)

_MAX_RECORDS = 1000  # registrations kept for assertions; a soak test cannot grow memory


@dataclass
class EdgeKnobs:
    """How the fake edge behaves; the defaults are RingCentral as the SDK describes it.

    Attributes:
        realm: the digest realm (RingCentral: the SIP domain).
        qop: None for RFC 2069 challenges (RingCentral SDK style), or ``"auth"``.
        algorithm: ``"MD5"`` or ``"SHA-256"``.
        stale_once: the first correctly authenticated REGISTER gets 401 stale=true with
            a fresh nonce (once per edge).
        granted_expires: the expiry every 200 grants (short values test refresh).
        forbid: answer every REGISTER 403.
        drop_after_register: close the connection right after each 200 (reconnect tests).
        record_route: put a Record-Route naming the edge on INVITEs pushed to the
            device, so its in-dialog requests must carry a Route (route-set tests).
        nonce_lifetime_s: how long a nonce stays fresh.
    """

    realm: str = "sip.ringcentral.com"
    qop: str | None = None
    algorithm: str = "MD5"
    stale_once: bool = False
    granted_expires: int = 3600
    forbid: bool = False
    drop_after_register: bool = False
    record_route: bool = False
    nonce_lifetime_s: float = 300.0


@dataclass
class Registration:
    """One REGISTER and how it was answered (every attempt is recorded).

    Attributes:
        status: the status the edge answered.
        user: the AOR user (To URI user), or None when unreadable.
        request: the REGISTER as received.
        contact: the first Contact value, or None (a query or ``*``).
        contact_transport: the Contact URI's ``transport`` parameter as sent (``"TLS"``).
        contact_ob: whether the Contact URI carries ``ob`` (RFC 5626).
        reg_id: the Contact's ``reg-id``, or None.
        instance: the Contact's ``+sip.instance`` unquoted (``<urn:uuid:...>``), or None.
        expires: the Expires header, or None.
        authorization: the parsed Authorization fields (``username``, ``realm``,
            ``nonce``, ``uri``, ``response``, ``algorithm``, ``qop``, ``nc``, ``cnonce``,
            ``opaque``), or None when the request had none.
        granted: the expiry granted in a 200, or None.
        stale: the 401 said stale=true.
    """

    status: int
    user: str | None
    request: SipRequest
    contact: str | None = None
    contact_transport: str | None = None
    contact_ob: bool = False
    reg_id: str | None = None
    instance: str | None = None
    expires: int | None = None
    authorization: dict[str, str | None] | None = None
    granted: int | None = None
    stale: bool = False


@dataclass
class Binding:
    """A user's current registration: where calls for it go.

    Attributes:
        user: the AOR user.
        contact: the registered Contact.
        flow: the connection it registered on (calls are pushed back over it).
        instance: ``+sip.instance`` unquoted, or None.
        reg_id: ``reg-id``, or None.
        expires: the granted expiry in seconds.
        registered_at: the edge clock when it was made.
        sequence: increases with every new binding of any user (compare to find newer).
    """

    user: str
    contact: NameAddr
    flow: SipFlow
    instance: str | None
    reg_id: str | None
    expires: int
    registered_at: float
    sequence: int = field(default=0)

    @property
    def uri(self) -> SipUri:
        """The Contact URI (the Request-URI of calls pushed to the device)."""
        assert isinstance(self.contact.uri, SipUri)  # only SIP Contacts are bound
        return self.contact.uri


class Registrar:
    """Answers REGISTER and keeps the bindings.

    Args:
        credentials: authorization ID -> password.
        knobs: behaviour knobs.
        clock: the clock for nonces and binding times.
    """

    def __init__(
        self,
        credentials: dict[str, str],
        knobs: EdgeKnobs,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = dict(credentials)
        self._knobs = knobs
        self._clock = clock
        self._digest = DigestServer(
            knobs.realm, algorithm=knobs.algorithm, qop=(knobs.qop,) if knobs.qop else (),
            lifetime=knobs.nonce_lifetime_s, clock=clock,
        )
        self._stale_sent = False
        self._sequence = 0
        self._changed = asyncio.Event()
        self.registrations: list[Registration] = []
        """Every REGISTER outcome, oldest first (the last 1000)."""
        self.bindings: dict[str, Binding] = {}
        """The current binding of each user."""

    def handle(self, flow: SipFlow, request: SipRequest) -> SipResponse:
        """Answer one REGISTER received on ``flow`` (and update the bindings)."""
        record = self._record(request)
        response = self._answer(flow, request, record)
        record.status = response.status
        self.registrations.append(record)
        del self.registrations[:-_MAX_RECORDS]
        return response

    def _record(self, request: SipRequest) -> Registration:
        record = Registration(status=0, user=None, request=request)
        try:
            to_uri = request.to.uri
            record.user = to_uri.user if isinstance(to_uri, SipUri) else None
            record.expires = request.expires
            contacts = request.contacts
        except SipParseError as error:
            log.info("sip edge: unreadable REGISTER: %s", error)
            return record
        if contacts:
            contact = contacts[0]
            record.contact = str(contact)
            if isinstance(contact.uri, SipUri):
                record.contact_transport = contact.uri.params.get("transport")
                record.contact_ob = "ob" in contact.uri.params
            record.reg_id = contact.params.get("reg-id")
            instance = contact.params.get("+sip.instance")
            record.instance = unquote(instance) if instance else None
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            try:
                record.authorization = dataclasses.asdict(parse_authorization(authorization))
            except AuthError as error:
                log.info("sip edge: bad Authorization: %s", error)
                record.authorization = {"error": str(error)}
        return record

    def _challenge(self, request: SipRequest, *, stale: bool) -> SipResponse:
        return build_response(request, 401, to_tag=new_tag(),
                              headers=[("WWW-Authenticate", self._digest.challenge(stale=stale))])

    def _answer(self, flow: SipFlow, request: SipRequest, record: Registration) -> SipResponse:
        if record.user is None:
            return build_response(request, 400, "Unreadable REGISTER", to_tag=new_tag())
        if self._knobs.forbid:
            return build_response(request, 403, to_tag=new_tag())
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return self._challenge(request, stale=False)
        auth_user = (record.authorization or {}).get("username")
        password = self._credentials.get(auth_user or "")
        if auth_user is None or password is None:
            return build_response(request, 403, to_tag=new_tag())
        try:
            verdict = self._digest.verify(authorization, method="REGISTER", username=auth_user,
                                          password=password, uri=str(request.uri))
        except AuthError:
            return build_response(request, 400, "Bad Authorization", to_tag=new_tag())
        if verdict is Verdict.OK and self._knobs.stale_once and not self._stale_sent:
            self._stale_sent = True
            verdict = Verdict.STALE
        if verdict is Verdict.STALE:
            record.stale = True
            return self._challenge(request, stale=True)
        if verdict is Verdict.WRONG:
            return build_response(request, 403, to_tag=new_tag())
        return self._bind(flow, request, record)

    def _bind(self, flow: SipFlow, request: SipRequest, record: Registration) -> SipResponse:
        assert record.user is not None
        contacts = request.contacts
        requested = record.expires
        if contacts and "expires" in contacts[0].params:
            try:
                requested = int(contacts[0].params["expires"] or "")
            except ValueError:
                requested = None
        if request.is_contact_wildcard or (contacts and requested == 0):
            self.bindings.pop(record.user, None)  # de-registration
            record.granted = 0
            return build_response(request, 200, to_tag=new_tag())
        if not contacts:  # a query: report the binding there is
            current = self.bindings.get(record.user)
            headers = [] if current is None else [
                ("Contact", f"{current.contact};expires={current.expires}")]
            return build_response(request, 200, to_tag=new_tag(), headers=headers)
        contact = contacts[0]
        if not isinstance(contact.uri, SipUri):
            return build_response(request, 400, "Contact is not a SIP URI", to_tag=new_tag())
        granted = self._knobs.granted_expires
        record.granted = granted
        self._sequence += 1
        self.bindings[record.user] = Binding(
            user=record.user, contact=contact, flow=flow, instance=record.instance,
            reg_id=record.reg_id, expires=granted, registered_at=self._clock(),
            sequence=self._sequence,
        )
        params = {k: v for k, v in contact.params.items() if k != "expires"}
        granted_contact = NameAddr(contact.uri, contact.display_name, {**params,
                                                                      "expires": str(granted)})
        self._notify()
        return build_response(request, 200, to_tag=new_tag(), headers=[
            ("Contact", str(granted_contact)), ("Expires", str(granted))])

    def _notify(self) -> None:
        # Each change sets the current event and installs a fresh one: waiters re-check.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_registered(
        self, user: str, *, timeout_s: float = 5.0, newer_than: Binding | None = None,
    ) -> Binding:
        """The user's binding once there is one (newer than ``newer_than`` if given).

        Raises:
            TimeoutError: none within ``timeout_s``.
        """
        async def wait() -> Binding:
            while True:
                binding = self.bindings.get(user)
                if binding is not None and (newer_than is None
                                            or binding.sequence > newer_than.sequence):
                    return binding
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"{user} did not register within {timeout_s} s") from None
