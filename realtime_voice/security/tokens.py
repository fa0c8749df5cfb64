"""Short-lived, single-use stream tokens bound to a call id (HMAC-SHA256).

The inbound webhook mints one; the media plane checks it before any session exists.
Format: ``<expiry unix seconds>.<nonce>.<signature>``, signature = HMAC-SHA256 with
``VOICE_STREAM_SECRET`` over ``call_id|expiry|nonce`` (urlsafe base64, no padding).

Single use is enforced in this process's memory. Calls are pinned to the process that
answered them until shared storage lands (docs/ARCHITECTURE.md "Scaling out").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

__all__ = ["StreamTokenIssuer", "TokenError"]


class TokenError(Exception):
    """A stream token was refused. ``reason`` is one of malformed/bad_signature/expired/reused."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"stream token refused: {reason}")
        self.reason = reason


class StreamTokenIssuer:
    """Mints and verifies stream tokens.

    Args:
        secret: the HMAC key.
        ttl_s: how long a token is valid.
        clock: wall clock in seconds (injectable for tests).
    """

    def __init__(
        self, secret: str, *, ttl_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = secret.encode()
        self._ttl = ttl_s
        self._clock = clock
        # nonce -> expiry; bounded because expired entries are pruned on every use.
        self._used: dict[str, float] = {}

    def mint(self, call_id: str, *, ttl_s: float | None = None) -> str:
        """A new token for ``call_id``, valid for ``ttl_s`` (default: the configured TTL).

        The browser leg's tokens are shorter-lived than a carrier's: the page opens its
        socket at once, a carrier may take a while to connect.
        """
        expiry = int(self._clock() + (self._ttl if ttl_s is None else ttl_s))
        nonce = secrets.token_urlsafe(9)
        return f"{expiry}.{nonce}.{self._sign(call_id, expiry, nonce)}"

    def verify(self, token: str, call_id: str, *, consume: bool = True) -> None:
        """Check ``token`` for ``call_id`` and (by default) mark it used.

        Raises:
            TokenError: malformed, wrong signature (wrong call or secret), expired or reused.
        """
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1] or not parts[2]:
            raise TokenError("malformed")
        expiry, nonce, signature = int(parts[0]), parts[1], parts[2]
        expected = self._sign(call_id, expiry, nonce)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise TokenError("bad_signature")
        now = self._clock()
        if now > expiry:
            raise TokenError("expired")
        self._prune(now)
        if nonce in self._used:
            raise TokenError("reused")
        if consume:
            self._used[nonce] = float(expiry)

    def _sign(self, call_id: str, expiry: int, nonce: str) -> str:
        mac = hmac.new(self._key, f"{call_id}|{expiry}|{nonce}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def _prune(self, now: float) -> None:
        expired = [n for n, exp in self._used.items() if exp < now]
        for n in expired:
            del self._used[n]
