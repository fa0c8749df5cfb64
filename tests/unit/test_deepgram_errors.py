"""Which Deepgram failures are retried, and what the error says."""

from __future__ import annotations

import httpx
import pytest
from deepgram.core.api_error import ApiError
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidStatus,
)
from websockets.frames import Close
from websockets.http11 import Response

from realtime_voice.providers.base import SttError, TtsError
from realtime_voice.providers.deepgram_errors import (
    DeepgramSttError,
    is_retryable_status,
    stt_error,
    tts_error,
)


def refused(status: int, body: bytes = b"") -> InvalidStatus:
    return InvalidStatus(Response(status, "x", Headers(), body))


def closed(code: int, reason: str) -> ConnectionClosedError:
    return ConnectionClosedError(Close(code, reason), None)


@pytest.mark.parametrize(
    ("exc", "retryable", "status", "code"),
    [
        (refused(401), False, 401, None),
        (refused(403), False, 403, None),
        (refused(400), False, 400, None),
        (refused(429), True, 429, None),
        (refused(503), True, 503, None),
        (closed(1011, "NET-0001: no audio"), True, None, 1011),
        (closed(1011, "NET-0000: internal"), True, None, 1011),
        (closed(1008, "DATA-0000: cannot decode"), False, None, 1008),
        (closed(1011, "DATA-0000: cannot decode"), False, None, 1011),
        (ConnectionClosedError(None, None), True, None, 1006),
        (ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True), True, None, 1000),
        (TimeoutError("timed out while waiting for handshake response"), True, None, None),
        (ConnectionRefusedError(111, "refused"), True, None, None),
        (InvalidMessage("did not receive a valid HTTP response"), True, None, None),
        (ApiError(status_code=401, body="bad"), False, 401, None),
        (ValueError("a bug"), False, None, None),
    ],
)
def test_stream_failures_are_classified(
    exc: BaseException, retryable: bool, status: int | None, code: int | None
) -> None:
    error = stt_error(exc)
    assert isinstance(error, SttError)
    assert error.retryable is retryable
    assert error.status == status
    assert error.close_code == code


def test_a_rejected_key_says_what_to_check() -> None:
    error = stt_error(refused(401, b'{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}'))
    assert "HTTP 401" in str(error)
    assert "DEEPGRAM_API_KEY" in str(error)
    assert "Invalid credentials" in str(error)


def test_undecodable_audio_names_the_options_to_check() -> None:
    assert "encoding/sample_rate" in str(stt_error(closed(1008, "DATA-0000")))


def test_an_error_already_translated_is_returned_as_is() -> None:
    error = DeepgramSttError("x", retryable=True)
    assert stt_error(error) is error


@pytest.mark.parametrize(
    ("exc", "retryable", "status"),
    [
        (ApiError(status_code=500, body={"err_msg": "boom"}), True, 500),
        (ApiError(status_code=400, body={"err_msg": "bad voice"}), False, 400),
        (ApiError(status_code=429, body=None), True, 429),
        (httpx.ConnectError("refused"), True, None),
        (httpx.ReadTimeout("slow"), True, None),
        (httpx.RemoteProtocolError("cut"), True, None),
        (KeyError("bug"), False, None),
    ],
)
def test_aura_failures_are_classified(
    exc: BaseException, retryable: bool, status: int | None
) -> None:
    error = tts_error(exc)
    assert isinstance(error, TtsError)
    assert error.retryable is retryable
    assert error.status == status


def test_retryable_statuses() -> None:
    statuses = (400, 401, 403, 404, 408, 413, 429, 500, 502, 503)
    assert [s for s in statuses if is_retryable_status(s)] == [408, 429, 500, 502, 503]
