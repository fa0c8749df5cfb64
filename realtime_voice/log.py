"""Logging with the call id on every line: text locally, JSON lines in production."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time

__all__ = ["call_id_var", "configure_logging", "mask_phone", "session_id_var"]

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
"""The call id of the task that is logging; each call's tasks copy it at creation."""

session_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("session_id", default="-")

_PHONE = re.compile(r"\+?\d[\d\-\s().]{6,}\d")


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


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id_var.get()
        record.session_id = session_id_var.get()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "call_id": getattr(record, "call_id", "-"),
            "session_id": getattr(record, "session_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger with the call-id filter."""
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s [%(call_id)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The websockets library logs every handshake failure at ERROR with a traceback; ours
    # already says what happened with the call id.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
