"""HTTP Basic credentials (RFC 7617), checked in constant time.

Exotel authenticates its Voicebot stream this way: the applet's URL is
``wss://KEY:TOKEN@host/path`` and Exotel sends ``Authorization: Basic
base64(KEY:TOKEN)`` on the upgrade (developer.exotel.com/docs/agentstream/
stream-voicebot-applet, "Authentication").
"""

from __future__ import annotations

import binascii
import hmac

__all__ = ["BasicAuthResult", "check_basic_auth"]


class BasicAuthResult:
    """What an ``Authorization`` header amounted to."""

    ABSENT = "absent"
    """No Basic credentials were presented."""
    VALID = "valid"
    """The expected user and password."""
    INVALID = "invalid"
    """Basic credentials that are wrong or unreadable."""


def check_basic_auth(header: str | None, user: str, password: str) -> str:
    """Compare an ``Authorization`` header with the expected Basic credentials.

    Both parts are compared whatever the first comparison gave, with
    `hmac.compare_digest`, so the time taken says nothing about which was wrong.

    Args:
        header: the request's ``Authorization`` value, if any.
        user: the expected user name.
        password: the expected password.

    Returns:
        One of the `BasicAuthResult` values.
    """
    if header is None:
        return BasicAuthResult.ABSENT
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return BasicAuthResult.ABSENT
    try:
        decoded = binascii.a2b_base64(encoded.strip().encode("ascii"), strict_mode=True)
        given_user, sep, given_password = decoded.decode("utf-8").partition(":")
    except (ValueError, UnicodeError):
        return BasicAuthResult.INVALID
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return BasicAuthResult.VALID if sep and user_ok and password_ok else BasicAuthResult.INVALID
