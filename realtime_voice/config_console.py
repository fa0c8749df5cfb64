"""The console's settings: the data directory, the operators' token, sessions, recordings.

The web console (`/`), the calls API and the browser leg live behind one operator token.
When ``VOICE_API_TOKEN`` is unset the server generates one at first start and keeps it in
the data directory (``<VOICE_DATA_DIR>/api-token``, mode 0600), as Jupyter does, so that
nothing serving transcripts, recordings or control actions is ever open by default.
Recordings are opt-in (``VOICE_RECORDINGS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConsoleSettings", "ConsoleSettingsError", "read_console_settings"]


class ConsoleSettingsError(ValueError):
    """A console setting is malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """Where the server keeps its own files, and how the console and recordings behave.

    Attributes:
        data_dir: ``VOICE_DATA_DIR``: the server's own files (the generated token, the
            recordings unless ``VOICE_RECORDINGS_DIR`` moves them).
        session_ttl_s: ``VOICE_CONSOLE_SESSION_TTL``: how long a console login lasts.
        browser_token_ttl_s: ``VOICE_BROWSER_TOKEN_TTL``: lifetime of the short-lived
            token a logged-in page is given to open one browser call.
        recordings: ``VOICE_RECORDINGS``: record every call as a stereo WAV file.
        recordings_dir: ``VOICE_RECORDINGS_DIR``: where (default ``<data_dir>/recordings``).
        recording_retention_days: ``VOICE_RECORDING_RETENTION_DAYS``: recordings older
            than this are deleted (0 keeps them for ever).
    """

    data_dir: str = "./var"
    session_ttl_s: float = 12 * 3600.0
    browser_token_ttl_s: float = 60.0
    recordings: bool = False
    recordings_dir: str | None = None
    recording_retention_days: float = 30.0

    @property
    def token_file(self) -> Path:
        """Where a generated operator token is kept."""
        return Path(self.data_dir) / "api-token"

    @property
    def recordings_path(self) -> Path:
        """The directory the recordings are written to."""
        return (
            Path(self.recordings_dir) if self.recordings_dir else Path(self.data_dir) / "recordings"
        )


def _positive_float(name: str, raw: str | None, default: float, *, zero_ok: bool = False) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or (value == 0 and not zero_ok) or value != value or value == float("inf"):
        expected = "a number of seconds/days >= 0" if zero_ok else "a positive number"
        raise ConsoleSettingsError(f"{name}={raw!r} is invalid: expected {expected}")
    return value


def _flag(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConsoleSettingsError(f"{name}={raw!r} is invalid: expected true or false")


def read_console_settings(opt: Callable[[str], str | None]) -> ConsoleSettings:
    """Read the console's settings.

    Args:
        opt: the environment reader: a variable's stripped value, or ``None`` when unset.

    Raises:
        ConsoleSettingsError: a malformed value (the message names the variable).
    """
    return ConsoleSettings(
        data_dir=opt("VOICE_DATA_DIR") or "./var",
        session_ttl_s=_positive_float(
            "VOICE_CONSOLE_SESSION_TTL", opt("VOICE_CONSOLE_SESSION_TTL"), 12 * 3600.0
        ),
        browser_token_ttl_s=_positive_float(
            "VOICE_BROWSER_TOKEN_TTL", opt("VOICE_BROWSER_TOKEN_TTL"), 60.0
        ),
        recordings=_flag("VOICE_RECORDINGS", opt("VOICE_RECORDINGS")),
        recordings_dir=opt("VOICE_RECORDINGS_DIR"),
        recording_retention_days=_positive_float(
            "VOICE_RECORDING_RETENTION_DAYS",
            opt("VOICE_RECORDING_RETENTION_DAYS"),
            30.0,
            zero_ok=True,
        ),
    )
