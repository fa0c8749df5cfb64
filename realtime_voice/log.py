"""Logging: the call and session id on every line, text locally, JSON lines in production.

Safety: the formatters scrub every message and traceback before it is written. Phone
numbers are masked (``+1******1234``), secrets are replaced by ``[redacted]`` (the
configured ones by value, anything shaped like a stream token, credential headers and
``key=value`` pairs by pattern, passwords in URLs). Call sites mask numbers themselves
too; the scrubber is the net under them, including for third-party libraries' lines.

Transcripts (what the caller and the bot said) are logged with `log_transcript`: at
DEBUG, or at INFO when ``VOICE_LOG_TRANSCRIPTS`` is set.

Threads do not inherit context variables: a thread that logs for a call must be started
with ``contextvars.copy_context().run`` as its target (the Deepgram bridge does).
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from types import TracebackType

from realtime_voice.config import Settings

__all__ = [
    "Scrubber",
    "call_id_var",
    "configure_logging",
    "log_transcript",
    "mask_phone",
    "secrets_of",
    "session_id_var",
]

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
"""The call id of the task that is logging; each call's tasks copy it at creation."""

session_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("session_id", default="-")
"""The session id of the task that is logging (the call's record in the database)."""

REDACTED = "[redacted]"

_MIN_SECRET_LEN = 6  # shorter configured values would blank out ordinary words
_MAX_ID_LEN = 64  # ids come from the gateway: bounded on every line

# Percent-encoded plus before a digit: numbers in logged URLs (from_number=%2B1555...).
_ENCODED_PLUS = re.compile(r"%2[Bb](?=\d)")
# With a plus, 8-15 digits; without, 10-15 (fewer would catch ordinary counts). Spaces,
# dashes and brackets may separate digits. Not inside a longer word or a dashed id (the
# digit run of a UUID must stay readable).
_PHONE = re.compile(
    r"(?<![\w+\-.])(?:\+\d(?:[ \-()]{0,2}\d){7,14}|\d(?:[ \-()]{0,2}\d){9,14})(?![\w\-])"
)
# The stream token format (realtime_voice/security/tokens.py): expiry.nonce.signature.
_STREAM_TOKEN = re.compile(r"\b\d{9,11}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,}")
# name=value, name: value, "name": "value", headers with an auth scheme.
_CREDENTIAL = re.compile(
    r"(?i)(?<![a-z0-9])"
    r"(token|api[_-]?key|secret|password|passwd|signature|authorization|jwt"
    r"|access_token|refresh_token|client_secret|verification-token|validation-token)"
    r"""(["']?\s*[=:]\s*["']?)(?:(?:bearer|token|basic)\s+)?"""
    r"""[^\s"'&,;}\]]+"""
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@")


def mask_phone(number: str) -> str:
    """Mask a phone number for logs, keeping the country prefix and the last 4 digits.

    ``+15555551234`` → ``+1******1234``.
    """
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) < 5:
        return "*" * len(digits)
    prefix = "+" + digits[0] if number.strip().startswith("+") else ""
    hidden = len(digits) - 4 - (1 if prefix else 0)
    return f"{prefix}{'*' * hidden}{digits[-4:]}"


class Scrubber:
    """Removes phone numbers and secrets from text bound for a log.

    Args:
        secrets: values never to write (API keys, tokens); values shorter than 6
            characters are ignored (they would blank out ordinary words).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}
        # Longest first: a secret containing another is replaced whole.
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every known secret, credential-looking value and number hidden."""
        # Patterns before literal values: they redact whole values ("Token <key>"), and a
        # value already replaced must not be matched again.
        text = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
        text = _STREAM_TOKEN.sub(REDACTED, text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _ENCODED_PLUS.sub("+", text)
        return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret in ``settings``: the string fields kept out of its ``repr``."""
    values = (getattr(settings, f.name) for f in dataclasses.fields(settings) if not f.repr)
    return tuple(v for v in values if isinstance(v, str) and v)


def log_transcript(logger: logging.Logger, enabled: bool, msg: str, *args: object) -> None:
    """Log what someone said: at INFO when ``enabled`` (VOICE_LOG_TRANSCRIPTS), else DEBUG.

    The record is marked ``transcript`` (a field of the JSON line), so a log pipeline can
    drop or route transcripts without parsing messages.
    """
    level = logging.INFO if enabled else logging.DEBUG
    logger.log(level, msg, *args, extra={"transcript": True}, stacklevel=2)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = _clean_id(call_id_var.get())
        record.session_id = _clean_id(session_id_var.get())
        return True


def _clean_id(value: str) -> str:
    # Gateways choose call and session ids: no control characters, bounded length.
    if value.isprintable() and len(value) <= _MAX_ID_LEN:
        return value
    return "".join(ch if ch.isprintable() else "?" for ch in value[:_MAX_ID_LEN])


class _TextFormatter(logging.Formatter):
    """``time LEVEL [call session] logger: message``, scrubbed; the session id shortened."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        # A newline inside a message would forge a second line; tracebacks keep theirs.
        message = self._scrub(record.getMessage()).replace("\r", "\\r").replace("\n", "\\n")
        call_id = getattr(record, "call_id", "-")
        session = getattr(record, "session_id", "-")[:8]
        line = (
            f"{self.formatTime(record)} {record.levelname:<7} [{call_id} {session}] "
            f"{record.name}: {message}"
        )
        if record.exc_info:
            line += "\n" + self._scrub(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + self._scrub(self.formatStack(record.stack_info))
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, call_id, session_id, msg (scrubbed)."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "call_id": getattr(record, "call_id", "-"),
            "session_id": getattr(record, "session_id", "-"),
            "msg": self._scrub(record.getMessage()),
        }
        if getattr(record, "transcript", False):
            payload["transcript"] = True
        if record.exc_info:
            payload["exc"] = self._scrub(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = self._scrub(self.formatStack(record.stack_info))
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", fmt: str = "text", *, secrets: Iterable[str] = ()
) -> None:
    """Install one stderr handler on the root logger: call ids, scrubbing, the format.

    Also routes uncaught exceptions (main thread and other threads) and warnings
    through logging, so they are formatted and scrubbed like every other line.

    Args:
        level: the root level (``DEBUG`` … ``ERROR``).
        fmt: ``text`` (readable, local runs) or ``json`` (one object per line).
        secrets: values never to write (`secrets_of` the settings).
    """
    scrub = Scrubber(secrets)
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.setFormatter(_JsonFormatter(scrub) if fmt == "json" else _TextFormatter(scrub))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The websockets library logs every handshake failure at ERROR with a traceback (and,
    # at DEBUG, every 20 ms frame); ours already says what happened with the call id.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpcore's DEBUG is a trace of every socket operation of every provider request
    # (httpcore2 under the OpenAI SDK).
    for name in ("httpcore", "httpcore2"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_crash


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):  # Ctrl-C is not a crash
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("realtime_voice").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("realtime_voice").error(
        "thread %s crashed",
        name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
