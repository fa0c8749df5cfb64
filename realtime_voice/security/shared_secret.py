"""Checking a shared secret that a client presents in a request header.

The inbound webhook's and RingCentral's ``Verification-Token`` and the calls API's
bearer token are all checked this way: compared as bytes in constant time, so response
times tell a caller nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac

__all__ = ["secret_matches"]


def secret_matches(given: str | None, expected: str) -> bool:
    """Whether the presented ``given`` equals ``expected``, compared in constant time.

    Args:
        given: the header value as received; ``None`` when the header is absent, which
            never matches.
        expected: the configured secret (or the whole expected header value, such as
            ``Bearer <token>``).
    """
    if given is None:
        return False
    # aiohttp decodes header bytes that are not UTF-8 as lone surrogates (and os.environ
    # does the same to configuration): surrogateescape gives those bytes back, so such a
    # value is compared like any other instead of raising (a 500 where 401 is due).
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )
