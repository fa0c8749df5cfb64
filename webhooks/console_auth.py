"""The console's `Authorizer`: the operator token as a bearer, or a signed login session.

API clients send ``Authorization: Bearer <operator token>``. A browser logs in once
(`webhooks.login_page`) and then carries the session cookie ``rv_session``:

- **Stateless and signed.** The cookie holds its issue time, its expiry and a random
  session id, with an HMAC-SHA256 over them keyed from the operator token. Nothing is
  stored per session, so sessions survive a restart and hold across worker processes;
  changing the token changes the key and so ends every session at once.
- **HttpOnly, SameSite=Strict, Path=/**, and ``Secure`` whenever the console is reached
  over https (the request itself, ``X-Forwarded-Proto`` behind a trusted proxy, or an
  https ``VOICE_PUBLIC_HTTP_URL``).
- **Cross-site request checks on writes.** A cookie is ambient: the browser attaches it
  to requests another site makes it send. So a cookie-authenticated write must pass both
  (a) an ``Origin`` (else ``Referer``) that is the console's own origin and (b) an
  ``X-CSRF-Token`` header equal to the session's CSRF token (an HMAC of the session id,
  which a page can read only from ``GET /api/console/session``, same-origin). A bearer
  request needs neither: no browser adds that header on its own.
- **Logout** clears the cookie and remembers the session id until its expiry (bounded,
  in memory), so a copy of the cookie taken before the logout stops working too.

Refusals are JSON: 401 ``unauthorized`` (no, wrong or expired credentials) and 403
``csrf`` (the message names the check that failed). docs/SECURITY.md has the whole list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aiohttp import web

from realtime_voice.config import Settings
from realtime_voice.security.shared_secret import secret_matches
from webhooks.authorize import refusal

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "ConsoleAuth",
    "ConsoleSession",
    "normalise_origin",
]

SESSION_COOKIE = "rv_session"
CSRF_HEADER = "X-CSRF-Token"

_VERSION = "1"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_COOKIE_CHARS = 256
_CLOCK_SKEW_S = 60
"""A session issued this far in the future is still taken: workers' clocks differ a little."""

_MAX_REVOKED = 10_000
"""Logged-out session ids remembered at most (about 1 MB); the oldest logout goes first."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """One console login, as its cookie carries it.

    Attributes:
        session_id: random, names the login (logout revokes it).
        issued_at: when the operator logged in (Unix seconds).
        expires_at: when the login ends (Unix seconds).
        csrf_token: what the page must send as ``X-CSRF-Token`` on writes.
    """

    session_id: str
    issued_at: int
    expires_at: int
    csrf_token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _derive(token: str, label: bytes) -> bytes:
    # One key per use, so a CSRF token can never pass as a cookie signature or back.
    return hmac.new(token.encode("utf-8", "surrogateescape"), label, hashlib.sha256).digest()


def normalise_origin(raw: str | None) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None if not one.

    ``null`` (a sandboxed or file page), other schemes and URLs without a host are None.
    A full URL (a ``Referer``) is cut to its origin.
    """
    if not raw or len(raw) > 2048:
        return None
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class ConsoleAuth:
    """Bearer token or login session for every operator route (`webhooks.authorize.Authorizer`).

    Args:
        token: the operator token (`realtime_voice.security.operator_token`).
        session_ttl_s: how long a login lasts (``VOICE_CONSOLE_SESSION_TTL``).
        public_http_url: ``VOICE_PUBLIC_HTTP_URL``: its origin is the console's, and an
            https one makes the cookie ``Secure``.
        allowed_origins: ``VOICE_ALLOWED_ORIGINS``: further origins the console is
            served from (a second host name).
        trust_proxy_headers: ``VOICE_TRUST_PROXY_HEADERS``: believe ``X-Forwarded-Proto``.
        clock: Unix seconds (injectable for tests).
    """

    def __init__(
        self,
        token: str,
        *,
        session_ttl_s: float,
        public_http_url: str | None = None,
        allowed_origins: Iterable[str] = (),
        trust_proxy_headers: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not token:
            raise ValueError("the operator token must not be empty")
        self._token = token
        self._session_key = _derive(token, b"realtime-voice console session v1")
        self._csrf_key = _derive(token, b"realtime-voice console csrf v1")
        self.session_ttl_s = max(1, int(session_ttl_s))
        self.public_http_url = public_http_url
        self._public_origin = normalise_origin(public_http_url)
        extra = (normalise_origin(origin) for origin in allowed_origins)
        self._static_origins = frozenset(
            o for o in (self._public_origin, *extra) if o is not None
        )
        self.trust_proxy_headers = trust_proxy_headers
        self._clock = clock
        self._revoked: OrderedDict[str, int] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, token: str) -> ConsoleAuth:
        """The console's authorizer for ``settings`` and the operator ``token``."""
        return cls(
            token,
            session_ttl_s=settings.console.session_ttl_s,
            public_http_url=settings.public_http_url,
            allowed_origins=settings.allowed_origins,
            trust_proxy_headers=settings.trust_proxy_headers,
        )

    # ------------------------------------------------------------------ the Authorizer

    async def __call__(self, request: web.Request, *, write: bool = False) -> None:
        """Let the operator's request through, or raise its 401 / 403 (see the module)."""
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, given = header.partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(given.strip()):
                return
            raise refusal(401, "unauthorized", "wrong bearer token")
        session, problem = self._read_cookie(request)
        if session is None:
            raise refusal(401, "unauthorized", problem)
        if write:
            self.check_cross_site(request, session)

    def token_matches(self, given: str | None) -> bool:
        """Whether ``given`` is the operator token (constant-time compare)."""
        return secret_matches(given, self._token)

    def page_session(self, request: web.Request) -> bool:
        """Whether a page request carries a valid login session (else: redirect to login)."""
        return self.session(request) is not None

    def session(self, request: web.Request) -> ConsoleSession | None:
        """The request's login session, if its cookie is valid, current and not revoked."""
        return self._read_cookie(request)[0]

    def login_redirect(self, request: web.Request) -> web.HTTPSeeOther:
        """A 303 to the login page that comes back to this page afterwards."""
        return web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")

    # ------------------------------------------------------------------ cross-site checks

    def is_console_origin(self, request: web.Request, origin: str | None) -> bool:
        """Whether ``origin`` (an ``Origin`` value) is where this console is served from.

        That is the request's own scheme and ``Host``, the origin of
        ``VOICE_PUBLIC_HTTP_URL``, or one of ``VOICE_ALLOWED_ORIGINS``.
        """
        wanted = normalise_origin(origin)
        if wanted is None:
            return False
        own = normalise_origin(f"{self.request_scheme(request)}://{request.host}")
        return wanted == own or wanted in self._static_origins

    def check_origin(self, request: web.Request) -> None:
        """Refuse (403 ``csrf``) unless ``Origin``, else ``Referer``, is the console's."""
        origin = request.headers.get("Origin")
        source = "Origin"
        if origin is None:
            origin = request.headers.get("Referer")
            source = "Referer"
        if origin is None:
            raise refusal(403, "csrf", "cross-site request check failed: "
                          "the request carries neither Origin nor Referer")
        if not self.is_console_origin(request, origin):
            shown = normalise_origin(origin) or origin[:100]
            raise refusal(403, "csrf", f"cross-site request check failed: {source} "
                          f"{shown!r} is not this console's origin")

    def check_cross_site(self, request: web.Request, session: ConsoleSession) -> None:
        """A cookie-authenticated write's two checks: the origin and the CSRF token."""
        self.check_origin(request)
        if not secret_matches(request.headers.get(CSRF_HEADER), session.csrf_token):
            raise refusal(403, "csrf", "cross-site request check failed: missing or wrong "
                          f"{CSRF_HEADER} header (read it from GET /api/console/session)")

    def request_scheme(self, request: web.Request) -> str:
        """``https`` when the request came over TLS (or, behind a trusted proxy, said so)."""
        if request.secure:
            return "https"
        if self.trust_proxy_headers:
            forwarded = request.headers.get("X-Forwarded-Proto", "")
            # The proxy in front of us appends: its own view is the right-most value.
            if forwarded.rsplit(",", 1)[-1].strip().lower() == "https":
                return "https"
        return "http"

    # ------------------------------------------------------------------ cookies

    def new_session(self) -> tuple[str, ConsoleSession]:
        """A fresh login: the cookie value and the session it carries."""
        now = int(self._clock())
        session_id = secrets.token_urlsafe(18)
        expires = now + self.session_ttl_s
        value = f"{_VERSION}.{now}.{expires}.{session_id}"
        signed = f"{value}.{self._sign(value)}"
        return signed, ConsoleSession(session_id, now, expires, self.csrf_token(session_id))

    def set_session_cookie(self, response: web.StreamResponse, request: web.Request) -> (
            ConsoleSession):
        """Log the browser in: a new session cookie on ``response``; returns the session."""
        value, session = self.new_session()
        response.set_cookie(
            SESSION_COOKIE, value, max_age=self.session_ttl_s, path="/",
            httponly=True, samesite="Strict", secure=self.secure_cookie(request),
        )
        return session

    def clear_session_cookie(self, response: web.StreamResponse, request: web.Request) -> None:
        """Log the browser out: the cookie is overwritten with an expired empty one."""
        response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict",
                            secure=self.secure_cookie(request))

    def secure_cookie(self, request: web.Request) -> bool:
        """Whether the cookie gets ``Secure``: the console is reached over https."""
        public_https = (self.public_http_url or "").lower().startswith("https://")
        return public_https or self.request_scheme(request) == "https"

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token of a session: an HMAC of its id (nothing to store)."""
        return _b64(hmac.new(self._csrf_key, session_id.encode("ascii"), hashlib.sha256).digest())

    def revoke(self, session: ConsoleSession) -> None:
        """Refuse this session from now on (until it would have expired anyway)."""
        now = int(self._clock())
        while self._revoked:
            oldest, expires = next(iter(self._revoked.items()))
            if expires > now and len(self._revoked) < _MAX_REVOKED:
                break
            del self._revoked[oldest]
        self._revoked[session.session_id] = session.expires_at

    def _sign(self, value: str) -> str:
        return _b64(hmac.new(self._session_key, value.encode("ascii"), hashlib.sha256).digest())

    def _read_cookie(self, request: web.Request) -> tuple[ConsoleSession | None, str]:
        """The session and, when there is none, why (the 401's message)."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None, ("log in at /login, or send Authorization: Bearer <operator token>")
        parts = raw.split(".")
        invalid = "the session cookie is not valid: log in again"
        if len(raw) > _MAX_COOKIE_CHARS or len(parts) != 5 or parts[0] != _VERSION:
            return None, invalid
        _, issued_raw, expires_raw, session_id, mac = parts
        if not (issued_raw.isdigit() and expires_raw.isdigit() and len(issued_raw) <= 12
                and len(expires_raw) <= 12 and _SESSION_ID.fullmatch(session_id)):
            return None, invalid
        signed = f"{_VERSION}.{issued_raw}.{expires_raw}.{session_id}"
        if not secret_matches(mac, self._sign(signed)):
            return None, invalid
        issued, expires = int(issued_raw), int(expires_raw)
        now = int(self._clock())
        # A lifetime longer than today's setting is refused too: shortening
        # VOICE_CONSOLE_SESSION_TTL shortens the sessions already handed out.
        if expires <= now or expires - issued > self.session_ttl_s or issued > now + _CLOCK_SKEW_S:
            return None, "the session has expired: log in again"
        if session_id in self._revoked:
            return None, "the session was logged out: log in again"
        return ConsoleSession(session_id, issued, expires, self.csrf_token(session_id)), ""
