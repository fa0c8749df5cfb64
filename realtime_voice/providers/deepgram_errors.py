"""Deepgram SDK, websockets and httpx exceptions translated into our error types at the boundary.

Callers never import an SDK exception: the STT bridge raises `DeepgramSttError` (an
`SttError`), Aura raises `DeepgramTtsError` (a `TtsError`), each saying whether another
attempt could help. The rules follow Deepgram's documentation:

- retry: handshake 408/429/5xx; close 1011 (``NET-0000`` server timeout, ``NET-0001``
  no audio for 10 s), 1006 (dropped without a close frame), 1001/1012/1013/1014 (server
  going away or restarting); timeouts; OSError (refused, reset, DNS); a malformed
  handshake reply.
- never retry: handshake 400/401/403/404 (bad options or key); ``DATA-0000`` (the audio
  cannot be decoded with the given encoding/sample_rate: 1002/1008 or reason
  ``DATA-…``); protocol errors; anything unexpected (a bug retried is a bug repeated).
"""

from __future__ import annotations

import json
from typing import Final

import httpx
from deepgram.core.api_error import ApiError
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from realtime_voice.providers.base import SttError, TtsError

__all__ = [
    "DeepgramSttError",
    "DeepgramTtsError",
    "is_retryable_status",
    "stt_error",
    "tts_error",
]

_RETRY_CLOSE_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
_BODY_CHARS = 200


class DeepgramSttError(SttError):
    """The Deepgram stream failed.

    Attributes:
        retryable: a reconnect could help.
        status: HTTP status of a refused handshake, if that is what happened.
        close_code: WebSocket close code received, if the socket was closed.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.close_code = close_code


class DeepgramTtsError(TtsError):
    """An Aura request failed.

    Attributes:
        retryable: another attempt could help (network, 429, 5xx).
        status: the HTTP status, when the server answered.
        completed_pieces: pieces (of the synthesiser's ``split_text``) fully delivered before the
            failure, when it interrupted an utterance; None when not known.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        completed_pieces: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.completed_pieces = completed_pieces


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status from Deepgram is worth another attempt."""
    return status in (408, 429) or status >= 500


def _status_advice(status: int) -> str:
    if status == 401:
        return "the API key was rejected: check DEEPGRAM_API_KEY"
    if status == 403:
        return "the API key may not use this model or feature"
    if status == 400:
        return "the request options were rejected"
    if status == 429:
        return "rate limited (too many concurrent requests)"
    if status >= 500:
        return "server error"
    return "request refused"


def _body_text(body: object) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        text = bytes(body).decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        try:
            text = json.dumps(body, default=str)
        except (TypeError, ValueError):
            text = repr(body)
    text = " ".join(text.split())
    return text[:_BODY_CHARS]


def stt_error(exc: BaseException) -> DeepgramSttError:
    """Translate a failure of the streaming socket (handshake or later).

    Args:
        exc: what the SDK or websockets raised.

    Returns:
        The error to raise or to decide a reconnect on (chain it with ``from exc``).
    """
    if isinstance(exc, DeepgramSttError):
        return exc
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        body = _body_text(exc.response.body)
        detail = f": {body}" if body else ""
        return DeepgramSttError(
            f"Deepgram refused the stream (HTTP {status}, {_status_advice(status)}){detail}",
            retryable=is_retryable_status(status),
            status=status,
        )
    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        return DeepgramSttError(
            f"Deepgram refused the stream (HTTP {status}, {_status_advice(status)})"
            f": {_body_text(exc.body)}",
            retryable=status == 0 or is_retryable_status(status),
            status=status or None,
        )
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        code = frame.code if frame is not None else 1006
        reason = frame.reason if frame is not None else "no close frame"
        if isinstance(exc, ConnectionClosedOK) and code == 1000:
            # Deepgram only closes cleanly after our CloseStream; anything else is a
            # server-side end we recover from like a drop.
            return DeepgramSttError(
                "Deepgram closed the stream unexpectedly (1000)", retryable=True, close_code=1000
            )
        undecodable = reason.startswith("DATA-") or code in (1002, 1003, 1007, 1008)
        retryable = code in _RETRY_CLOSE_CODES and not undecodable
        what = "cannot decode the audio (check encoding/sample_rate)" if undecodable else reason
        return DeepgramSttError(
            f"Deepgram closed the stream ({code} {what})".rstrip(),
            retryable=retryable,
            close_code=code,
        )
    if isinstance(exc, InvalidURI):
        return DeepgramSttError(f"bad Deepgram WebSocket URL: {exc}", retryable=False)
    if isinstance(exc, InvalidMessage | InvalidHandshake):
        return DeepgramSttError(f"Deepgram handshake failed: {exc}", retryable=True)
    if isinstance(exc, TimeoutError):
        return DeepgramSttError(f"Deepgram did not answer in time: {exc}", retryable=True)
    if isinstance(exc, OSError):
        return DeepgramSttError(f"cannot reach Deepgram: {exc!r}", retryable=True)
    return DeepgramSttError(f"Deepgram stream failed: {exc!r}", retryable=False)


def tts_error(exc: BaseException) -> DeepgramTtsError:
    """Translate a failure of an Aura REST request.

    Args:
        exc: what the SDK or httpx raised.

    Returns:
        The error to raise or to decide a retry on (chain it with ``from exc``).
    """
    if isinstance(exc, DeepgramTtsError):
        return exc
    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        return DeepgramTtsError(
            f"Aura refused the request (HTTP {status}, {_status_advice(status)})"
            f": {_body_text(exc.body)}",
            retryable=status == 0 or is_retryable_status(status),
            status=status or None,
        )
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return DeepgramTtsError(
            f"Aura refused the request (HTTP {status}, {_status_advice(status)})",
            retryable=is_retryable_status(status),
            status=status,
        )
    if isinstance(exc, httpx.TransportError | TimeoutError | OSError):
        return DeepgramTtsError(f"cannot reach Aura: {exc!r}", retryable=True)
    return DeepgramTtsError(f"Aura request failed: {exc!r}", retryable=False)
