"""Twilio's request signature (``X-Twilio-Signature``), computed and verified.

Both planes check it when ``TWILIO_AUTH_TOKEN`` is set: the HTTP plane on the
incoming-call webhook, the media plane on the Media Streams WebSocket upgrade
(docs/PROTOCOLS.md §3). The signature is base64 HMAC-SHA1, keyed with the auth token, over
the full URL Twilio requested followed by every POST parameter's name and value, sorted
by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["twilio_signature", "verify_twilio_signature"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature.

    Args:
        auth_token: the account's auth token (the HMAC key).
        url: the full URL Twilio requested, query string included.
        params: the POST form parameters (name, value); repeated names are allowed.

    Returns:
        base64 of HMAC-SHA1 over the URL followed by each name and value, sorted.
    """
    # Sorting whole pairs orders repeated names by value, a stable choice either way.
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio_signature(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str
) -> bool:
    """Whether ``signature`` is Twilio's signature of this request.

    The URL is tried as given and with its default port added or removed, since proxies
    and Twilio disagree on whether ``:443`` is part of the URL.
    """
    pairs = list(params)
    given = signature.encode()
    return any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, pairs).encode(), given)
        for candidate in _url_variants(url)
    )


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.username or default is None:
        return [url]
    if parts.port is None:
        other = parts._replace(netloc=f"{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=host)
    else:
        return [url]
    return [url, urlunsplit(other)]
