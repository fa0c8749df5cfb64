"""What the log formatters write: ids on every line, no numbers, no secrets, one line each."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from realtime_voice.config import Settings
from realtime_voice.log import (
    Scrubber,
    call_id_var,
    configure_logging,
    log_transcript,
    mask_phone,
    secrets_of,
    session_id_var,
)

KEY = "dg-live-key-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call from +15555551234 to +1 (555) 555-5678", "call from +1******1234 to +1******5678"),
        ("from_number=%2B15555551234&x=1", "from_number=+1******1234&x=1"),
        ("national 555-555-1234 and 02079460958", "national ******1234 and *******0958"),
        ("> Authorization: Token " + KEY, "> Authorization: [redacted]"),
        ("{'Authorization': 'Bearer sk-abc123'}", "{'Authorization': '[redacted]'}"),
        ('{"token": "1712345678.abc.def"}', '{"token": "[redacted]"}'),
        ("GET /ws?call_id=c1&token=1712345678.nonce1234.sig HTTP/1.1",
         "GET /ws?call_id=c1&token=[redacted] HTTP/1.1"),
        ("handed out 1712345678.AbCdEf123_x.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
         "handed out [redacted]"),
        ("postgresql+psycopg://voice:hunter22@db:5432/calls",
         "postgresql+psycopg://voice:[redacted]@db:5432/calls"),
        ("the key is " + KEY + ".", "the key is [redacted]."),
    ],
)  # fmt: skip
def test_numbers_and_secrets_are_hidden(text: str, expected: str) -> None:
    assert Scrubber([KEY])(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "session 123e4567-e89b-12d3-a456-426614174000 ended",
        "callSid CA0123456789abcdef0123456789abcdef",
        "listening: http :8000, media :8001; 268435456 bytes; 3.14159265358979",
        "stream token refused: reused",
        "chat model usage: 358 prompt_tokens, total_tokens=371",
        "started 2024-05-01T12:00:00Z, 5 calls",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Scrubber([KEY, "abc"])(text) == text


def test_mask_phone_keeps_the_country_and_last_four() -> None:
    assert mask_phone("+15555551234") == "+1******1234"
    assert mask_phone("5555551234") == "******1234"
    assert mask_phone("123") == "***"


def test_the_secrets_of_the_settings_are_the_fields_kept_out_of_repr() -> None:
    settings = Settings(
        deepgram_api_key=KEY, openai_api_key="sk-1", api_token="api-token-1", rc_client_id="id"
    )
    found = secrets_of(settings)
    assert {KEY, "sk-1", "api-token-1", settings.stream_secret} <= set(found)
    assert "id" not in found  # a client id is not a secret


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root handler's stream, restored afterwards (configure_logging replaces it)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, threading.excepthook, sys.excepthook)
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], level, threading.excepthook, sys.excepthook = saved
    root.setLevel(level)
    logging.captureWarnings(False)


def install(stream: io.StringIO, fmt: str) -> None:
    configure_logging("DEBUG", fmt, secrets=[KEY])
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def test_json_lines_carry_the_ids_and_are_scrubbed(stream: io.StringIO) -> None:
    install(stream, "json")
    log = logging.getLogger("realtime_voice.test")
    call_id_var.set("call-42")
    session_id_var.set("5f0e1c2a-1111-2222-3333-444455556666")
    try:
        raise ValueError(f"upstream said key {KEY} for +15555551234")
    except ValueError:
        log.exception("provider failed for %s", "+15555551234")
    log_transcript(log, False, "caller said: %s", "my number is 555 555 1234")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["call_id"] == "call-42"
    assert first["session_id"] == "5f0e1c2a-1111-2222-3333-444455556666"
    assert first["msg"] == "provider failed for +1******1234"
    assert KEY not in first["exc"] and "5555551234" not in first["exc"]
    assert second["level"] == "DEBUG" and second["transcript"] is True
    assert second["msg"] == "caller said: my number is ******1234"


def test_text_lines_are_one_line_each_with_the_ids(stream: io.StringIO) -> None:
    install(stream, "text")
    call_id_var.set("call-7\nforged")
    session_id_var.set("5f0e1c2a-1111-2222-3333-444455556666")
    logging.getLogger("realtime_voice.test").warning("bad frame: %s", "a\nFAKE LINE")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "[call-7?forged 5f0e1c2a] realtime_voice.test: bad frame: a\\nFAKE LINE" in lines[0]


def test_a_crashing_thread_is_one_scrubbed_log_entry(stream: io.StringIO) -> None:
    install(stream, "json")

    def crash() -> None:
        raise RuntimeError(f"boom with {KEY}")

    thread = threading.Thread(target=contextvars.copy_context().run, args=(crash,), name="w1")
    thread.start()
    thread.join()
    (line,) = (json.loads(raw) for raw in stream.getvalue().splitlines())
    assert (line["level"], line["msg"]) == ("ERROR", "thread w1 crashed")
    assert "RuntimeError" in line["exc"] and KEY not in line["exc"]


def test_transcripts_are_info_when_enabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("realtime_voice.test")
    log_transcript(log, True, "bot says: %s", "hello")
    log_transcript(log, False, "bot says: %s", "bye")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "bot says: hello"),
        (logging.DEBUG, "bot says: bye"),
    ]
