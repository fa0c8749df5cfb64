"""The SIP ladder in the log, with secrets taken out.

At DEBUG, every message a flow sends or receives is logged whole (docs/RINGCENTRAL_SIP.md
§4.2: what RingCentral really sends is known only from its SDK, so the first real calls'
ladders are the evidence). Two things in it are secrets and never reach a log: the digest
``response`` (with the nonce it is an offline password-guessing oracle) and the SRTP
master keys of ``a=crypto`` lines (they decrypt the call's audio).
"""

from __future__ import annotations

import re

from realtime_voice.sip.headers import SipMessage

__all__ = ["redact"]

_MAX_TRACE = 8000  # characters of one message logged (bodies are small; be safe anyway)
_DIGEST_SECRET = re.compile(r'((?:response|cnonce)\s*=\s*)("[^"]*"|[^,\s]+)', re.IGNORECASE)
_CRYPTO_KEY = re.compile(r"(inline:)[A-Za-z0-9+/=]+")
_AUTH_HEADERS = ("Authorization", "Proxy-Authorization")


def redact(message: SipMessage) -> str:
    """The message as text, digest responses and SRTP keys replaced by ``<redacted>``."""
    lines = [message.start_line()]
    for name, value in message.headers:
        if name in _AUTH_HEADERS:
            value = _DIGEST_SECRET.sub(r"\1<redacted>", value)
        lines.append(f"{name}: {value}")
    text = "\r\n".join(lines)
    if message.body:
        body = message.body.decode("utf-8", "replace")
        text += "\r\n\r\n" + _CRYPTO_KEY.sub(r"\1<redacted>", body)
    return text[:_MAX_TRACE]
