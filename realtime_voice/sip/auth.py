"""SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Sans-I/O and stdlib only. The client side answers a 401 ``WWW-Authenticate`` or 407
``Proxy-Authenticate`` challenge (`parse_challenge` or `choose_challenge`, then
`DigestClient.authorization`); the server side (`DigestServer`) issues challenges and
checks answers, for the fake RingCentral registrar in the tests.

Algorithms MD5, MD5-sess, SHA-256 and SHA-256-sess; qop ``auth`` (preferred) or
``auth-int``; and no qop at all, the RFC 2069 form RingCentral's own SDK uses
(docs/RINGCENTRAL_SIP.md §3): ``response = H(H(A1):nonce:H(A2))``. A ``-sess`` algorithm
needs a cnonce, which only a qop provides, so a challenge pairing them without qop is
refused. ``stale=true`` means the nonce expired, not that the password is wrong: retry
once with the same credentials (`DigestChallenge.stale`).

Every malformed header raises `AuthError` (a `SipParseError`), never anything else.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from realtime_voice.sip.uri import SipParseError, is_token, quote, split_outside, unquote

__all__ = [
    "ALGORITHMS", "AuthError", "DigestChallenge", "DigestClient", "DigestCredentials",
    "DigestServer", "Verdict", "choose_challenge", "digest_response", "parse_authorization",
    "parse_challenge",
]

# Canonical spelling -> hash. The lookup is case-insensitive (RFC 7616 §3.3 tokens).
ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "MD5-sess": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-256-sess": lambda data: hashlib.sha256(data).hexdigest(),
}
"""The digest algorithms we speak, by their RFC 7616 names."""
_BY_LOWER = {name.lower(): name for name in ALGORITHMS}
_SCHEME = re.compile(r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:[ \t]+(.*))?", re.DOTALL)
_BARE_VALUE = re.compile(r"[^\s\",]+")
_NC = re.compile(r"[0-9a-fA-F]{8}")
_MAX_NONCES = 8  # nonces whose nonce-count a client (or server) remembers


def _bytes(text: str) -> bytes:
    """``text`` as bytes for hashing and constant-time comparison.

    surrogateescape: a header value holding bytes that were not UTF-8 (decoded that
    way by the message parser) encodes back to those same bytes. Any other lone
    surrogate (from a caller's str) still encodes, deterministically, instead of raising.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


class AuthError(SipParseError):
    """A challenge or credentials header we cannot parse, or cannot answer.

    The message names the problem (``"WWW-Authenticate: no nonce"``). Being a
    `SipParseError`, a malformed ``Authorization`` in a request is answered with 400.
    """


def _params(value: str, header: str) -> dict[str, str]:
    """The auth-params of a ``Digest`` header value, unquoted, names lower-cased."""
    match = _SCHEME.fullmatch(value)
    if match is None:
        raise AuthError(f"{header}: no scheme")
    if match.group(1).lower() != "digest":
        raise AuthError(f"{header}: scheme {match.group(1)[:20]!r} is not Digest")
    params: dict[str, str] = {}
    try:
        for piece in split_outside(match.group(2) or "", ","):
            name, eq, raw = piece.partition("=")
            name, raw = name.strip(" \t").lower(), raw.strip(" \t")
            if not name and not raw:
                continue  # an empty list element
            if not eq or not is_token(name):
                raise AuthError(f"{header}: bad parameter {piece.strip()[:30]!r}")
            if name in params:
                raise AuthError(f"{header}: {name} given twice")
            if raw.startswith('"'):
                params[name] = unquote(raw)
            elif _BARE_VALUE.fullmatch(raw):
                params[name] = raw
            else:
                raise AuthError(f"{header}: bad value for {name}")
    except AuthError:
        raise
    except SipParseError as error:  # an unterminated quoted string, an unclosed '<'
        raise AuthError(f"{header}: {error.reason}") from None
    return params


def _algorithm(name: str | None, header: str) -> str:
    if name is None:
        return "MD5"  # RFC 2617 §3.2.1: absent means MD5
    canonical = _BY_LOWER.get(name.lower())
    if canonical is None:
        raise AuthError(f"{header}: unsupported algorithm {name[:20]!r}")
    return canonical


@dataclass(frozen=True)
class DigestChallenge:
    """One ``Digest`` challenge from a ``WWW-Authenticate`` or ``Proxy-Authenticate``.

    Attributes:
        realm: the protection realm (what the password belongs to).
        nonce: the server's nonce.
        algorithm: one of `ALGORITHMS` (canonical spelling).
        qop: the qop values offered, lower case (``()`` for the RFC 2069 form).
        opaque: to be echoed unchanged, or None.
        stale: the previous nonce expired; the credentials were right.
        algorithm_given: whether the challenge named the algorithm (it is echoed then).
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    algorithm_given: bool = True

    def to_header(self) -> str:
        """The challenge as a header value (``Digest realm="...", nonce="..."...``)."""
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.algorithm_given:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str, header: str = "WWW-Authenticate") -> DigestChallenge:
    """Parse one ``Digest`` challenge.

    Args:
        value: the header value.
        header: its name, for error messages (``"Proxy-Authenticate"`` for a 407).

    Raises:
        AuthError: not Digest, no realm or nonce, an unsupported algorithm, a qop list
            with neither ``auth`` nor ``auth-int``, or ``-sess`` without qop.
    """
    params = _params(value, header)
    for required in ("realm", "nonce"):
        if required not in params:
            raise AuthError(f"{header}: no {required}")
    algorithm = _algorithm(params.get("algorithm"), header)
    qop = tuple(q.strip(" \t").lower() for q in params.get("qop", "").split(",") if q.strip())
    if qop and not {"auth", "auth-int"} & set(qop):
        raise AuthError(f"{header}: no supported qop in {params['qop'][:30]!r}")
    if algorithm.endswith("-sess") and not qop:
        raise AuthError(f"{header}: {algorithm} needs a qop")
    return DigestChallenge(
        realm=params["realm"], nonce=params["nonce"], algorithm=algorithm, qop=qop,
        opaque=params.get("opaque"), stale=params.get("stale", "").lower() == "true",
        algorithm_given="algorithm" in params,
    )


def choose_challenge(values: Iterable[str], header: str = "WWW-Authenticate") -> DigestChallenge:
    """The challenge to answer among several (RFC 8760 §2.4: the first one we support).

    A server may offer SHA-256 and MD5 side by side, and other schemes too; those we
    cannot parse or do not support are skipped.

    Raises:
        AuthError: none of them is usable (the message is the first one's problem).
    """
    first_problem: AuthError | None = None
    for value in values:
        try:
            return parse_challenge(value, header)
        except AuthError as error:
            first_problem = first_problem or error
    raise first_problem or AuthError(f"no {header} challenge")


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1; RFC 2069 when ``qop`` is None).

    Args:
        algorithm: a key of `ALGORITHMS`.
        username: the user (RingCentral: the authorization ID).
        realm: the challenge's realm.
        password: the password.
        method: the request method.
        uri: the digest-uri (RingCentral: the Request-URI, ``sip:<domain>``).
        nonce: the server's nonce.
        qop: ``"auth"``, ``"auth-int"`` or None.
        nc: the nonce count, 8 hex digits (with a qop).
        cnonce: the client nonce (with a qop, or a ``-sess`` algorithm).
        body: the request body (``auth-int`` only).

    Raises:
        AuthError: an unknown algorithm, or a qop or ``-sess`` without nc/cnonce.
    """
    h = ALGORITHMS.get(algorithm)
    if h is None:
        raise AuthError(f"unsupported algorithm {algorithm[:20]!r}")
    if (qop is not None and (nc is None or cnonce is None)) or (
            algorithm.endswith("-sess") and cnonce is None):
        raise AuthError("a qop or -sess digest needs nc and cnonce")

    def hex_of(*parts: str) -> str:
        return h(_bytes(":".join(parts)))

    ha1 = hex_of(username, realm, password)
    if algorithm.endswith("-sess"):
        ha1 = hex_of(ha1, nonce, cnonce or "")
    ha2 = hex_of(method, uri, h(body)) if qop == "auth-int" else hex_of(method, uri)
    if qop is None:
        return hex_of(ha1, nonce, ha2)
    return hex_of(ha1, nonce, nc or "", cnonce or "", qop, ha2)


class DigestClient:
    """Answers digest challenges for one set of credentials.

    Keeps the nonce count per nonce (RFC 7616 §3.4: each reuse of a nonce counts up),
    for the last few nonces, so a registrar's and a proxy's challenges can interleave.

    Args:
        username: the digest username (RingCentral: the authorization ID).
        password: the password.
        cnonce: makes a client nonce; default 128 random bits (tests inject a fixed one).
    """

    def __init__(
        self, username: str, password: str, *, cnonce: Callable[[], str] | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self._cnonce = cnonce or (lambda: secrets.token_hex(16))
        self._counts: dict[str, int] = {}

    def authorization(
        self, challenge: DigestChallenge, method: str, uri: str, body: bytes = b"",
    ) -> str:
        """The ``Authorization`` (or ``Proxy-Authorization``) value answering ``challenge``.

        Args:
            challenge: from `parse_challenge` or `choose_challenge`.
            method: the method of the request being resent.
            uri: the digest-uri, normally that request's Request-URI.
            body: that request's body (used by ``auth-int`` only).
        """
        qop = None
        if challenge.qop:
            qop = "auth" if "auth" in challenge.qop else "auth-int"
        nc = cnonce = None
        if qop is not None:
            count = self._counts.pop(challenge.nonce, 0) + 1
            self._counts[challenge.nonce] = count  # re-inserted: now the newest
            while len(self._counts) > _MAX_NONCES:
                del self._counts[next(iter(self._counts))]
            nc, cnonce = f"{count:08x}", self._cnonce()
        response = digest_response(
            algorithm=challenge.algorithm, username=self.username, realm=challenge.realm,
            password=self._password, method=method, uri=uri, nonce=challenge.nonce, qop=qop,
            nc=nc, cnonce=cnonce, body=body,
        )
        parts = [f"username={quote(self.username)}", f"realm={quote(challenge.realm)}",
                 f"nonce={quote(challenge.nonce)}", f"uri={quote(uri)}",
                 f"response={quote(response)}"]
        if challenge.algorithm_given:
            parts.append(f"algorithm={challenge.algorithm}")
        if qop is not None:
            parts += [f"cnonce={quote(cnonce or '')}", f"qop={qop}", f"nc={nc}"]
        if challenge.opaque is not None:
            parts.append(f"opaque={quote(challenge.opaque)}")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class DigestCredentials:
    """A parsed ``Authorization`` / ``Proxy-Authorization`` value.

    Attributes:
        username, realm, nonce, uri, response: as sent.
        algorithm: one of `ALGORITHMS`.
        qop: ``"auth"``, ``"auth-int"`` or None.
        nc: the nonce count (8 hex digits) or None.
        cnonce: the client nonce or None.
        opaque: the echoed opaque or None.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def parse_authorization(value: str, header: str = "Authorization") -> DigestCredentials:
    """Parse a ``Digest`` credentials header.

    Raises:
        AuthError: not Digest (RFC 4475 regaut01's unknown scheme), a field missing, an
            unknown algorithm or qop, or a malformed nc.
    """
    params = _params(value, header)
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in params:
            raise AuthError(f"{header}: no {required}")
    qop = params.get("qop")
    if qop is not None:
        qop = qop.lower()
        if qop not in ("auth", "auth-int"):
            raise AuthError(f"{header}: unsupported qop {qop[:20]!r}")
        if "cnonce" not in params or _NC.fullmatch(params.get("nc", "")) is None:
            raise AuthError(f"{header}: qop without cnonce and an 8-digit nc")
    return DigestCredentials(
        username=params["username"], realm=params["realm"], nonce=params["nonce"],
        uri=params["uri"], response=params["response"],
        algorithm=_algorithm(params.get("algorithm"), header), qop=qop,
        nc=params.get("nc") if qop else None, cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
    )


class Verdict(enum.Enum):
    """What `DigestServer.verify` concluded."""

    OK = "ok"
    """The right password, a fresh nonce of ours."""
    STALE = "stale"
    """The right password for an expired (or unknown) nonce: challenge with stale=TRUE."""
    WRONG = "wrong"
    """Anything else: wrong password or user, other realm or algorithm, replayed nc."""


class DigestServer:
    """Issues digest challenges and checks the answers (a registrar's or proxy's side).

    Nonces are stateless: the issue time and an HMAC of it under a per-server secret, so
    an injected clock can age them past ``lifetime`` to produce stale ones.

    Args:
        realm: the realm named in challenges.
        algorithm: one of `ALGORITHMS`.
        qop: the qop values offered; ``()`` gives RFC 2069 challenges (RingCentral's
            SDK style).
        opaque: sent in challenges and required back, or None.
        lifetime: seconds a nonce stays fresh.
        clock: the time source (seconds); tests move it forward.
        secret: the nonce key; default 256 random bits.
    """

    def __init__(
        self,
        realm: str,
        *,
        algorithm: str = "MD5",
        qop: tuple[str, ...] = ("auth",),
        opaque: str | None = None,
        lifetime: float = 300.0,
        clock: Callable[[], float] = time.time,
        secret: bytes | None = None,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        if algorithm.endswith("-sess") and not qop:
            raise ValueError(f"{algorithm} needs a qop")
        self.realm, self.algorithm, self.qop, self.opaque = realm, algorithm, qop, opaque
        self._lifetime, self._clock = lifetime, clock
        self._secret = secret or secrets.token_bytes(32)
        self._last_nc: dict[str, int] = {}

    def _mac(self, issued: str) -> str:
        digest = hmac.new(self._secret, _bytes(f"{issued}:{self.realm}"), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:18]).decode()

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value with a fresh nonce."""
        issued = f"{int(self._clock()):x}"
        return DigestChallenge(
            realm=self.realm, nonce=f"{issued}.{self._mac(issued)}", algorithm=self.algorithm,
            qop=self.qop, opaque=self.opaque, stale=stale,
        ).to_header()

    def _fresh(self, nonce: str) -> bool:
        issued, _, mac = nonce.partition(".")
        if not hmac.compare_digest(_bytes(mac), self._mac(issued).encode()):
            return False  # not ours (or from before a restart): stale if the digest is right
        age = self._clock() - int(issued, 16)
        return -1 <= age <= self._lifetime

    def verify(
        self,
        authorization: str,
        *,
        method: str,
        username: str,
        password: str,
        body: bytes = b"",
        uri: str | None = None,
    ) -> Verdict:
        """Check a credentials header against the expected user and password.

        Args:
            authorization: the ``Authorization`` / ``Proxy-Authorization`` value.
            method: the request's method.
            username: the user expected.
            password: that user's password.
            body: the request body (``auth-int``).
            uri: the Request-URI the digest-uri must equal, or None to skip that check.

        Raises:
            AuthError: the header is malformed (answer 400, or challenge again).
        """
        creds = parse_authorization(authorization)
        if (creds.algorithm != self.algorithm or creds.realm != self.realm
                or (uri is not None and creds.uri != uri)
                or (creds.qop is None) != (not self.qop)
                or (creds.qop is not None and creds.qop not in self.qop)
                or creds.opaque != self.opaque
                or not hmac.compare_digest(_bytes(creds.username), _bytes(username))):
            return Verdict.WRONG
        expected = digest_response(
            algorithm=creds.algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=creds.uri, nonce=creds.nonce, qop=creds.qop, nc=creds.nc,
            cnonce=creds.cnonce, body=body,
        )
        if not hmac.compare_digest(expected.encode(), _bytes(creds.response.lower())):
            return Verdict.WRONG
        if not self._fresh(creds.nonce):
            return Verdict.STALE
        if creds.nc is not None:  # a replayed (or reordered) nonce count is refused
            count = int(creds.nc, 16)
            if count <= self._last_nc.get(creds.nonce, 0):
                return Verdict.WRONG
            self._last_nc.pop(creds.nonce, None)
            self._last_nc[creds.nonce] = count
            while len(self._last_nc) > 4 * _MAX_NONCES:
                del self._last_nc[next(iter(self._last_nc))]
        return Verdict.OK
