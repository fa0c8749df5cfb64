"""Plivo's request signature V3 (``X-Plivo-Signature-V3``), and our signed transfer URLs.

Plivo signs every request to our URLs (plivo.com/docs/voice/xml/request/validation) with
two headers: ``X-Plivo-Signature-V3-Nonce`` and ``X-Plivo-Signature-V3``, a
comma-separated list of signatures (one per active auth token) of which one must match.
The construction below follows the official SDK, plivo-python
``plivo/utils/signature_v3.py`` (``validate_v3_signature``), step for step:

- the base is ``scheme://netloc/path`` of the URL Plivo requested (no query);
- GET: the query's parameters, sorted by name (each name's values sorted), are added as
  ``?name=value&name=value``;
- POST: ``?`` follows the base when there is a query or a body; the sorted query
  (``name=value&...``) and a ``.`` follow when there is a query *and* a body; then
  every body parameter as ``namevalue``, sorted by name (each name's values sorted);
- the string signed is that URL, ``.`` and the nonce: base64 HMAC-SHA256 keyed with
  the auth token.

Transfers need a second signature of our own. Plivo's transfer API makes the call fetch
XML from a URL we give (`realtime_voice.carriers.plivo`); that XML dials the human. So
that nobody can make us dial an arbitrary number by requesting that URL, the number is
signed into it with the server's stream secret, bound to the call and an expiry
(`transfer_url` / `verify_transfer`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import defaultdict
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "TRANSFER_TTL_S",
    "plivo_signature_v3",
    "transfer_signature",
    "transfer_url",
    "verify_plivo_signature_v3",
    "verify_transfer",
]

TRANSFER_TTL_S = 300
"""How long a signed transfer URL is good for: Plivo fetches it within seconds."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _grouped(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name, value in pairs:
        groups[name].append(value)
    return [(name, sorted(groups[name])) for name in sorted(groups)]


def _sorted_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, values in _grouped(pairs) for value in values)


def _signed_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = _sorted_query(parse_qsl(parts.query, keep_blank_values=True))
    if method.upper() == "GET":
        # The SDK merges the query with the GET params it is given, which are the same.
        return f"{base}?{query}" if query else base
    body = "".join(name + value for name, values in _grouped(params) for value in values)
    if query or body:
        base += "?" + query
    if query and body:
        base += "."
    return base + body


def plivo_signature_v3(
    auth_token: str,
    url: str,
    nonce: str,
    params: Iterable[tuple[str, str]] = (),
    *,
    method: str = "POST",
) -> str:
    """Plivo's V3 signature of one request.

    Args:
        auth_token: the (sub)account's auth token (the HMAC key).
        url: the full URL Plivo requested, query string included.
        nonce: the ``X-Plivo-Signature-V3-Nonce`` header.
        params: the POST form parameters (name, value); repeated names are allowed.
            Ignored for GET, whose parameters are the URL's query.
        method: ``POST`` or ``GET``, the method Plivo used.

    Returns:
        base64 of HMAC-SHA256 over the canonical URL, ``.`` and the nonce.
    """
    message = f"{_signed_string(method, url, params)}.{nonce}"
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_plivo_signature_v3(
    auth_token: str,
    url: str,
    nonce: str,
    signatures: str,
    params: Iterable[tuple[str, str]] = (),
    *,
    method: str = "POST",
) -> bool:
    """Whether one of ``signatures`` (the comma-separated header) signs this request.

    The URL is tried as given and with its default port added or removed, since proxies
    disagree on whether ``:443`` is part of it.
    """
    if not nonce or not signatures:
        return False
    pairs = list(params)
    given = [s.strip().encode() for s in signatures.split(",") if s.strip()]
    for candidate in _url_variants(url):
        expected = plivo_signature_v3(auth_token, candidate, nonce, pairs, method=method).encode()
        # Compare against every one so the time taken does not say which matched.
        if sum(hmac.compare_digest(expected, g) for g in given):
            return True
    return False


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: sign what we were given
        return [url]
    if parts.username or default is None:
        return [url]
    if port is None:
        other = parts._replace(netloc=f"{host}:{default}")
    elif port == default:
        other = parts._replace(netloc=host)
    else:
        return [url]
    return [url, urlunsplit(other)]


# ------------------------------------------------------------- signed transfer URLs


def transfer_signature(secret: bytes, call_uuid: str, number: str, expiry: int) -> str:
    """HMAC-SHA256 with ``secret`` over ``plivo-transfer|call_uuid|number|expiry``."""
    message = f"plivo-transfer|{call_uuid}|{number}|{expiry}".encode()
    mac = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def transfer_url(
    base_url: str,
    secret: bytes,
    call_uuid: str,
    number: str,
    *,
    ttl_s: int = TRANSFER_TTL_S,
    now: float | None = None,
) -> str:
    """The URL of the XML that dials ``number`` for ``call_uuid``, signed.

    Args:
        base_url: the public transfer route (``https://host/api/voice/plivo/transfer``).
        secret: the server's stream secret.
        call_uuid: the call being transferred; Plivo sends it back as ``CallUUID``.
        number: the number to dial.
        ttl_s: how long the URL stays valid.
        now: the wall clock (tests).

    Returns:
        ``base_url?to=<number>&exp=<unix seconds>&sig=<signature>``.
    """
    expiry = int((time.time() if now is None else now) + ttl_s)
    query = urlencode(
        {
            "to": number,
            "exp": str(expiry),
            "sig": transfer_signature(secret, call_uuid, number, expiry),
        }
    )
    return f"{base_url}{'&' if '?' in base_url else '?'}{query}"


def verify_transfer(
    secret: bytes,
    call_uuid: str,
    number: str,
    expiry: str,
    signature: str,
    *,
    now: float | None = None,
) -> bool:
    """Whether a transfer URL's ``to``/``exp``/``sig`` were signed by us for this call."""
    if not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12:
        return False
    expected = transfer_signature(secret, call_uuid, number, int(expiry))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return False
    return (time.time() if now is None else now) <= int(expiry)
