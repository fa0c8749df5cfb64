"""Field checks every JSON stream codec shares (Twilio, Exotel, Telnyx, Plivo, Vonage).

The carriers' events differ, but the way a field is wrong does not: a section that is not
an object, a payload that is not base64, a stream id that names another stream. One
implementation keeps the codecs from drifting apart (each carrier's copy was the same
lines) and gives every carrier the same error text.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

from realtime_voice.protocols.base import ProtocolError

__all__ = ["check_stream_id", "decode_base64_payload", "section"]


def section(obj: Mapping[str, Any], key: str, event: str) -> Mapping[str, Any]:
    """``obj[key]`` when it is an object.

    Raises:
        ProtocolError: ``bad_message`` naming the event and the key.
    """
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(
            "bad_message", f"{event} message needs a {key!r} object, got {type(value).__name__}"
        )
    return value


def decode_base64_payload(payload: object, where: str) -> bytes:
    """The bytes of a base64 ``payload`` field (strict: no stray characters).

    Raises:
        ProtocolError: ``bad_message``: not a string, or not valid base64.
    """
    if not isinstance(payload, str):
        raise ProtocolError(
            "bad_message", f"{where} must be a base64 string, got {type(payload).__name__}"
        )
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except ValueError as exc:
        # binascii.Error for bad base64, plain ValueError for non-ASCII text.
        raise ProtocolError("bad_message", f"{where} is not valid base64 ({exc})") from None


def check_stream_id(current: str | None, given: object, field: str, event: str) -> None:
    """An event after ``start`` that names no stream, or this one.

    Args:
        current: this stream's id, ``None`` before ``start``.
        given: the id the event carries, if any.
        field: the id's field name, for the message.
        event: the event's name, for the message.

    Raises:
        ProtocolError: ``bad_message``: before ``start``, or for another stream.
    """
    if current is None:
        raise ProtocolError("bad_message", f"{event!r} event received before start")
    if given is not None and given != current:
        raise ProtocolError(
            "bad_message",
            f"{event!r} event for {field} {given!r}, not this stream's {current!r}",
        )
