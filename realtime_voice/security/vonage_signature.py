"""Vonage signed webhooks for the Voice API: ``Authorization: Bearer <JWT>``, checked.

Vonage signs a Voice webhook (answer and event URLs) with a JWT in the ``Authorization``
header (developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks,
and the official SDK's ``vonage_jwt.verify_signature``: ``jwt.decode(token, secret,
algorithms="HS256")``). It is HS256, keyed with the account's *signature secret* (not
the API secret), and its claims include ``iat``, ``jti``, ``iss`` (``Vonage``),
``api_key``, ``application_id`` and ``payload_hash``: the SHA-256 hex digest of the
payload. Vonage's support article on Voice signed webhooks says what the payload is: an
object of the query parameters (GET) or of the request body (POST), in their order,
as JSON with no whitespace. `VonageWebhookVerifier` accepts the hash of the raw body
as sent or of that compact JSON, so a body Vonage sends compact or spaced passes.

The verifier checks, in order: the Bearer token is there; its signature (HS256 only:
a ``none`` or RS256 token is refused) with the secret; ``iat`` is present and not older
than ``max_age_s`` nor more than ``skew_s`` in the future (Vonage documents no ``exp``
for these tokens, so the age bounds replays); ``exp``, if present, has not passed; and
``payload_hash`` matches. `sign_vonage_webhook` mints such a token, for the tests and
the simulated carrier.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import jwt

__all__ = [
    "VonageSignatureError",
    "VonageWebhookVerifier",
    "compact_json_hash",
    "payload_hash",
    "sign_vonage_webhook",
]

_BEARER: Final = "bearer "
_MAX_TOKEN_CHARS: Final = 8192


class VonageSignatureError(Exception):
    """The webhook's signature is missing or wrong.

    Attributes:
        reason: a short explanation for the log and the 401/403 body (never the token).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def payload_hash(body: bytes) -> str:
    """SHA-256 hex digest of ``body``: what ``payload_hash`` holds."""
    return hashlib.sha256(body).hexdigest()


def compact_json_hash(obj: object) -> str:
    """SHA-256 hex of ``obj`` as compact JSON (no whitespace, keys in their order).

    Non-ASCII text stays as it is, as JavaScript's ``JSON.stringify`` writes it.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return payload_hash(text.encode("utf-8"))


def sign_vonage_webhook(
    signature_secret: str,
    body_hash: str,
    *,
    api_key: str = "abcd1234",
    application_id: str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    iat: int | None = None,
) -> str:
    """A signed-webhook JWT as Vonage mints it (HS256 over the claims below).

    Args:
        signature_secret: the account's signature secret.
        body_hash: the ``payload_hash`` claim (`payload_hash` or `compact_json_hash`).
        api_key: the ``api_key`` claim.
        application_id: the ``application_id`` claim.
        iat: issue time (epoch seconds); now when omitted.
    """
    claims = {
        "iat": int(time.time()) if iat is None else iat,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": body_hash,
        "api_key": api_key,
        "application_id": application_id,
    }
    return jwt.encode(claims, signature_secret, algorithm="HS256")


class VonageWebhookVerifier:
    """Checks Vonage's ``Authorization: Bearer`` JWT on one webhook request.

    Args:
        signature_secret: the account's signature secret (``VONAGE_SIGNATURE_SECRET``).
        max_age_s: how old an ``iat`` may be.
        skew_s: how far in the future an ``iat`` may be (clock skew).
        clock: epoch seconds (tests inject one).

    Raises:
        ValueError: an empty secret.
    """

    def __init__(
        self,
        signature_secret: str,
        *,
        max_age_s: float = 300.0,
        skew_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signature_secret:
            raise ValueError("the Vonage signature secret must not be empty")
        self._secret = signature_secret
        self._max_age_s = max_age_s
        self._skew_s = skew_s
        self._clock = clock

    def verify(
        self,
        authorization: str | None,
        *,
        body: bytes = b"",
        query: Iterable[tuple[str, str]] = (),
    ) -> Mapping[str, Any]:
        """Check one request's token; returns its claims.

        Args:
            authorization: the ``Authorization`` header (None when absent).
            body: the raw request body (POST).
            query: the query parameters in their order (GET).

        Raises:
            VonageSignatureError: missing, malformed, mis-signed, too old or for another
                payload.
        """
        token = _bearer(authorization)
        try:
            # Time claims are checked below against our own clock; PyJWT checks the
            # signature and that only HS256 is accepted.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidSignatureError:
            raise VonageSignatureError("signature does not match the signature secret") from None
        except jwt.InvalidTokenError as exc:
            raise VonageSignatureError(f"malformed token ({type(exc).__name__})") from None
        if not isinstance(claims, dict):
            raise VonageSignatureError("token claims are not an object")
        self._check_time(claims)
        expected = claims.get("payload_hash")
        if not isinstance(expected, str) or not expected:
            raise VonageSignatureError("token has no payload_hash claim")
        if not any(
            hmac.compare_digest(expected.lower(), candidate)
            for candidate in _payload_hashes(body, list(query))
        ):
            raise VonageSignatureError("payload_hash does not match the request payload")
        return claims

    def _check_time(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise VonageSignatureError("token has no numeric iat claim")
        if iat > now + self._skew_s:
            raise VonageSignatureError("token iat is in the future")
        if now - iat > self._max_age_s:
            raise VonageSignatureError(f"token is older than {self._max_age_s:g} s")
        exp = claims.get("exp")
        if exp is not None:
            if isinstance(exp, bool) or not isinstance(exp, int | float):
                raise VonageSignatureError("token exp claim is not a number")
            if exp < now - self._skew_s:
                raise VonageSignatureError("token has expired")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise VonageSignatureError("no Authorization header")
    if not authorization[: len(_BEARER)].lower() == _BEARER:
        raise VonageSignatureError("Authorization is not a Bearer token")
    token = authorization[len(_BEARER) :].strip()
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise VonageSignatureError("Authorization Bearer token is empty or too long")
    return token


def _payload_hashes(body: bytes, query: list[tuple[str, str]]) -> list[str]:
    """Every hash a genuine request may carry: raw body, compact body JSON, query JSON."""
    hashes: list[str] = []
    if body:
        hashes.append(payload_hash(body))
        try:
            parsed = json.loads(body)
        except (RecursionError, UnicodeDecodeError, ValueError):
            parsed = None
        if parsed is not None:
            hashes.append(compact_json_hash(parsed))
    else:
        # GET: the query parameters as a JSON object, in order (a repeated name keeps
        # its last value, as a JavaScript object would).
        hashes.append(compact_json_hash(dict(query)))
        if not query:
            hashes.append(payload_hash(b""))
    return hashes
