"""Telnyx's webhook signature (``telnyx-signature-ed25519`` + ``telnyx-timestamp``), verified.

Telnyx signs every webhook, TeXML requests included, with its account's Ed25519 key:
the ``telnyx-signature-ed25519`` header is the base64 signature over
``f"{telnyx-timestamp}|{raw request body}"``, the ``telnyx-timestamp`` header Unix
seconds. The public key to check it is shown in the Mission Control Portal as base64
(the 32 raw key bytes). A timestamp more than the tolerance (300 s, as Telnyx's SDKs
use) away from now, either way, is refused so a captured request cannot be replayed
later. Sources: developers.telnyx.com/api-reference/callbacks/texml-call-answered (the
headers) and team-telnyx/telnyx-python ``src/telnyx/lib/webhook_verification.py`` (the
signed text, the key encoding and the tolerance).

Ed25519 itself is the ``cryptography`` package's; nothing here is hand-written crypto.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TelnyxSignatureError",
    "TelnyxWebhookVerifier",
]

SIGNATURE_HEADER: Final = "telnyx-signature-ed25519"
TIMESTAMP_HEADER: Final = "telnyx-timestamp"
DEFAULT_TOLERANCE_S: Final = 300.0
"""How far ``telnyx-timestamp`` may be from our clock (Telnyx's SDKs use 5 minutes)."""

_KEY_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64
# A Unix time in seconds has 10 digits until 2286; more is not a timestamp.
_MAX_TIMESTAMP_DIGITS: Final = 12


class TelnyxSignatureError(ValueError):
    """A request's Telnyx signature was refused; ``reason`` says why (no secrets in it).

    Reasons: ``missing_signature``, ``missing_timestamp``, ``bad_timestamp``,
    ``stale_timestamp``, ``bad_signature``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"telnyx signature refused: {reason}")
        self.reason = reason


class TelnyxWebhookVerifier:
    """Checks requests against one account's Telnyx public key.

    Args:
        public_key: ``TELNYX_PUBLIC_KEY``, the base64 Ed25519 key from the portal.
        tolerance_s: the largest accepted distance between the request's timestamp and
            our clock, in seconds.
        clock: wall clock in seconds (injectable for tests).

    Raises:
        ValueError: the key is not base64 of 32 bytes, or the tolerance is negative.
    """

    def __init__(
        self,
        public_key: str,
        *,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            raw = base64.b64decode(public_key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("Telnyx public key is not valid base64") from None
        if len(raw) != _KEY_BYTES:
            raise ValueError(
                f"Telnyx public key must be {_KEY_BYTES} bytes of Ed25519 key, got {len(raw)}"
            )
        if tolerance_s < 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self._tolerance = tolerance_s
        self._clock = clock

    def verify(self, body: bytes, signature: str | None, timestamp: str | None) -> None:
        """Check one request.

        Args:
            body: the raw request body, exactly as received.
            signature: the ``telnyx-signature-ed25519`` header, if present.
            timestamp: the ``telnyx-timestamp`` header, if present.

        Raises:
            TelnyxSignatureError: missing headers, a timestamp that is malformed or out
                of tolerance, or a signature that is not Telnyx's over this body.
        """
        if not signature:
            raise TelnyxSignatureError("missing_signature")
        if not timestamp:
            raise TelnyxSignatureError("missing_timestamp")
        stamp = timestamp.strip()
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > _MAX_TIMESTAMP_DIGITS:
            raise TelnyxSignatureError("bad_timestamp")
        if abs(self._clock() - int(stamp)) > self._tolerance:
            raise TelnyxSignatureError("stale_timestamp")
        try:
            raw_signature = base64.b64decode(signature.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise TelnyxSignatureError("bad_signature") from None
        if len(raw_signature) != _SIGNATURE_BYTES:
            raise TelnyxSignatureError("bad_signature")
        # The digits are what Telnyx signed, so they are used as sent (not re-spelt
        # from the int: a leading zero would change the signed text).
        try:
            self._key.verify(raw_signature, stamp.encode("ascii") + b"|" + body)
        except InvalidSignature:
            raise TelnyxSignatureError("bad_signature") from None

    def is_valid(self, body: bytes, signature: str | None, timestamp: str | None) -> bool:
        """Whether `verify` accepts the request."""
        try:
            self.verify(body, signature, timestamp)
        except TelnyxSignatureError:
            return False
        return True
