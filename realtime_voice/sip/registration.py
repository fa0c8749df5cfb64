"""REGISTER (RFC 3261 §10, RFC 5626 outbound): the device's binding at RingCentral.

`Registration` owns one device's registration: it builds each REGISTER the way
RingCentral's own softphone SDK shapes it (docs/RINGCENTRAL_SIP.md §3: Request-URI
``sip:<domain>``, Contact ``;transport=TLS;ob`` with ``reg-id`` and ``+sip.instance``,
one Call-ID per instance), answers the digest challenge (MD5 or SHA-256, with or
without ``qop``; ``stale=true`` retried at once), and reports a `RegistrationStatus` the
health endpoint shows. The I/O is the caller's: `register` takes an ``exchange``
coroutine that sends one request and returns its final response (the transaction layer).

A wrong password never loops: a refusal (403, 404, or a second 401 that answers our
credentials) is a `RegistrationState.REFUSED` status naming the problem; the user agent
retries a refusal only a bounded number of times, slowly.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from realtime_voice.sip.auth import AuthError, DigestChallenge, DigestClient, choose_challenge
from realtime_voice.sip.dialog import LocalContact, via_value
from realtime_voice.sip.headers import Headers, SipRequest, SipResponse
from realtime_voice.sip.message import new_call_id, new_tag
from realtime_voice.sip.uri import SipParseError, SipUri

__all__ = [
    "ALLOW",
    "USER_AGENT",
    "Registration",
    "RegistrationState",
    "RegistrationStatus",
    "SipAccount",
]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE, PRACK"
"""The methods we accept (Allow header of REGISTER, 200s and 405s)."""
USER_AGENT = "realtime-voice"

_MAX_ROUNDS = 4  # one plain REGISTER, a challenge, a stale retry, one Min-Expires bump


@dataclass(frozen=True)
class SipAccount:
    """The SIP credentials of one RingCentral "Existing Phone" device.

    Attributes:
        domain: the SIP domain (``sip.ringcentral.com``): Request-URI and AOR host.
        username: the device's SIP user name (AOR user and Contact user).
        password: its SIP password.
        authorization_id: the digest user name (RingCentral's authorization ID).
        proxy_host: the outbound proxy's host (TLS server name is checked against it).
        proxy_port: the outbound proxy's port.
    """

    domain: str
    username: str
    password: str
    authorization_id: str
    proxy_host: str
    proxy_port: int

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return (f"SipAccount(domain={self.domain!r}, username={self.username!r}, "
                f"proxy={self.proxy_host}:{self.proxy_port})")

    @property
    def aor(self) -> SipUri:
        """The address of record, ``sip:<username>@<domain>``."""
        return SipUri(host=self.domain, user=self.username)


class RegistrationState(enum.Enum):
    """Where the registration stands (health shows the value)."""

    UNREGISTERED = "unregistered"
    """Not tried yet, or stopped."""
    REGISTERING = "registering"
    """A REGISTER is on its way."""
    REGISTERED = "registered"
    """RingCentral holds our binding: calls reach us."""
    FAILING = "failing"
    """No connection, a timeout or a server error: retrying with backoff."""
    REFUSED = "refused"
    """The credentials were refused: retried only a few times, slowly."""


@dataclass(frozen=True)
class RegistrationStatus:
    """One outcome of `Registration.register`, or the state between two.

    Attributes:
        state: the state.
        detail: what happened, in words (the last status line, or the error).
        status: the last SIP status code received, if any.
        expires_s: the binding lifetime granted, when registered.
        at: ``time.time()`` of this status.
    """

    state: RegistrationState
    detail: str = ""
    status: int | None = None
    expires_s: int | None = None
    at: float = 0.0


Exchange = Callable[[SipRequest], Awaitable[SipResponse]]
"""Send one request and return its final response (may raise on timeout or a lost flow)."""


class Registration:
    """One device's registration.

    Args:
        account: the credentials.
        instance_id: our ``+sip.instance`` (``urn:uuid:...``), stable for the process.
        expires_s: the lifetime we ask for (RingCentral's SDK asks 3600).
        refresh_interval_s: re-REGISTER at least this often (the SDK: every 30 s, which
            also keeps NAT and TLS paths warm).
        clock: wall clock for status timestamps.
    """

    def __init__(
        self,
        account: SipAccount,
        *,
        instance_id: str,
        expires_s: int = 3600,
        refresh_interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.instance_id = instance_id
        self._expires_s = expires_s
        self._refresh_s = refresh_interval_s
        self._clock = clock
        self._call_id = new_call_id()
        self._cseq = 0
        self._digest = DigestClient(account.authorization_id, account.password)
        self._challenge: tuple[str, DigestChallenge] | None = None  # (header, challenge)
        self.changed = asyncio.Event()
        """Set whenever `status` changes (a waiter clears it, then checks, then waits)."""
        self._status = RegistrationStatus(RegistrationState.UNREGISTERED, at=clock())

    @property
    def status(self) -> RegistrationStatus:
        """The latest outcome or state."""
        return self._status

    @status.setter
    def status(self, value: RegistrationStatus) -> None:
        self._status = value
        self.changed.set()

    @property
    def call_id(self) -> str:
        """The Call-ID every REGISTER of this instance carries."""
        return self._call_id

    def refresh_delay(self) -> float:
        """Seconds until the next REGISTER, after a success."""
        granted = self.status.expires_s or self._expires_s
        # Never later than halfway through the granted lifetime, whatever the interval.
        return max(1.0, min(self._refresh_s, granted / 2))

    def set_status(self, state: RegistrationState, detail: str,
                   status: int | None = None) -> RegistrationStatus:
        """Record a state the user agent decided (connection lost, stopped)."""
        self.status = RegistrationStatus(state, detail, status, at=self._clock())
        return self.status

    def build(self, local: LocalContact, *, expires_s: int | None = None) -> SipRequest:
        """The next REGISTER (new CSeq, branch and From tag; cached credentials if any)."""
        self._cseq += 1
        aor = str(self.account.aor)
        contact = (f"{local.contact()};reg-id=1;"
                   f'+sip.instance="<{self.instance_id}>"')
        fields = [
            ("Via", via_value(local)),
            ("Max-Forwards", "70"),
            ("From", f"<{aor}>;tag={new_tag()}"),
            ("To", f"<{aor}>"),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", contact),
            ("Expires", str(self._expires_s if expires_s is None else expires_s)),
            ("Allow", ALLOW),
            ("Supported", "path, outbound, gruu"),
            ("User-Agent", USER_AGENT),
        ]
        request = SipRequest("REGISTER", SipUri(host=self.account.domain),
                             headers=Headers(fields))
        if self._challenge is not None:
            header, challenge = self._challenge
            name = "Authorization" if header == "WWW-Authenticate" else "Proxy-Authorization"
            request.headers.add(name, self._digest.authorization(
                challenge, "REGISTER", str(request.uri)))
        return request

    async def register(self, exchange: Exchange, local: LocalContact, *,
                       expires_s: int | None = None) -> RegistrationStatus:
        """One registration (or refresh, or with ``expires_s=0`` removal), challenges included.

        Exceptions of ``exchange`` (timeout, lost flow) propagate; the status then still
        says REGISTERING, and the caller sets FAILING.
        """
        self.status = RegistrationStatus(RegistrationState.REGISTERING, at=self._clock())
        answered_challenge = False  # whether our last REGISTER answered a fresh 401
        for _ in range(_MAX_ROUNDS):
            response = await exchange(self.build(local, expires_s=expires_s))
            if 200 <= response.status < 300:
                return self._registered(response, local, expires_s)
            if response.status in (401, 407):
                header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                try:
                    challenge = choose_challenge(response.headers.values(header), header)
                except AuthError as exc:
                    return self._refused(response, f"unusable challenge: {exc}")
                if answered_challenge and not challenge.stale:
                    self._challenge = None
                    return self._refused(
                        response, "credentials refused (check RC_SIP_PASSWORD and "
                        "RC_SIP_AUTHORIZATION_ID)")
                self._challenge = (header, challenge)
                answered_challenge = True
                continue
            if response.status == 423:
                minimum = response.headers.get("Min-Expires")
                if minimum and minimum.isdigit():
                    expires_s = self._expires_s = int(minimum)
                    continue
            if response.status in (403, 404):
                self._challenge = None
                return self._refused(response, "registration forbidden (check the device's "
                                     "SIP credentials: RC_SIP_USERNAME, RC_SIP_PASSWORD, "
                                     "RC_SIP_AUTHORIZATION_ID, RC_SIP_DOMAIN)")
            return self.set_status(RegistrationState.FAILING,
                                   f"{response.status} {response.reason}", response.status)
        return self.set_status(RegistrationState.FAILING, "too many challenges")

    def _registered(self, response: SipResponse, local: LocalContact,
                    asked: int | None) -> RegistrationStatus:
        granted = self._granted(response, local)
        if granted is None:
            granted = self._expires_s if asked is None else asked
        self.status = RegistrationStatus(
            RegistrationState.REGISTERED if granted > 0 else RegistrationState.UNREGISTERED,
            f"{response.status} {response.reason}", response.status, granted, self._clock())
        return self.status

    def _granted(self, response: SipResponse, local: LocalContact) -> int | None:
        """The lifetime the registrar gave our Contact (its ``expires`` parameter), else
        the Expires header."""
        try:
            for contact in response.contacts:
                uri = contact.uri
                if (isinstance(uri, SipUri) and uri.port == local.port
                        and (uri.user or None) == (local.user or None)):
                    value = contact.params.get("expires")
                    if value is not None and value.isdigit():
                        return int(value)
            return response.expires
        except SipParseError:
            return None

    def _refused(self, response: SipResponse, detail: str) -> RegistrationStatus:
        status = self.set_status(RegistrationState.REFUSED,
                                 f"{response.status} {response.reason}: {detail}",
                                 response.status)
        log.error("SIP registration of %s refused: %s", self.account.aor, status.detail)
        return status
