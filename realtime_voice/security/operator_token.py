"""The operators' token: configured, or generated once and kept in the data directory.

The console, the calls API and every control action answer only the operator token, so
nothing that serves transcripts, recordings or live calls is open by default. With
``VOICE_API_TOKEN`` set, that is the token. Otherwise the first start generates one and
writes it to ``<VOICE_DATA_DIR>/api-token`` (mode 0600), as Jupyter does, and later starts
read it back: the operator's login link, their scripts and ``realtime-voice dial`` keep
working across restarts.

The file is created with its whole content in one step (a private temporary file, then a
hard link to the final name, which fails if the name exists), so two processes starting
together agree on one token: the loser of the race reads the winner's file, and no reader
ever sees a half-written one. A file that exists but cannot be used (unreadable, empty,
not a token) stops start-up naming the file; it is never silently replaced, since that
would lock out every client holding the old token.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from realtime_voice.config_console import ConsoleSettings

__all__ = [
    "OperatorToken",
    "OperatorTokenError",
    "TokenSource",
    "find_operator_token",
    "load_or_create_operator_token",
    "read_token_file",
]

log = logging.getLogger(__name__)

TokenSource = Literal["env", "generated", "file"]

_TOKEN_BYTES = 32
"""Entropy of a generated token: 256 bits (43 URL-safe characters)."""

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
"""What a token file may hold: one printable word, long enough to be a secret. A
generated token is URL-safe base64; an operator may write their own of this shape."""

_MAX_FILE_BYTES = 4096


class OperatorTokenError(RuntimeError):
    """The token file cannot be used; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class OperatorToken:
    """The operator token and where it came from.

    Attributes:
        token: the secret itself.
        source: ``env`` (``VOICE_API_TOKEN``), ``generated`` (written at this start) or
            ``file`` (generated at an earlier start, read back).
        path: the token file (``None`` when the token came from the environment).
    """

    token: str = field(repr=False)
    source: TokenSource
    path: Path | None = None


def read_token_file(path: Path) -> str:
    """The token kept in ``path``.

    Raises:
        FileNotFoundError: there is no such file.
        OperatorTokenError: it exists but is unreadable, empty or not a token.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
            mode = os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise OperatorTokenError(
            f"the operator token file {path} cannot be read: {exc.strerror or exc}"
        ) from None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if len(raw) > _MAX_FILE_BYTES or not _TOKEN_SHAPE.fullmatch(text):
        what = "is empty" if not raw.strip() else "does not hold a token"
        raise OperatorTokenError(
            f"the operator token file {path} {what} (expected one line of 16-256 "
            "URL-safe characters): fix it, or delete it to have a new token generated"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Not fatal (the operator may share it on purpose), but worth saying once.
        log.warning("operator token file %s is readable by others (mode %o): chmod 600 it",
                    path, stat.S_IMODE(mode))
    return text


def _create_exclusive(path: Path, token: str) -> bool:
    """Write ``token`` to ``path`` unless it exists; False when another process won."""
    data = (token + "\n").encode("ascii")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # The link appears with its full content, or not at all if the name is taken.
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # A file system without hard links: create the name exclusively instead. A
            # process starting in the same instant may then read it before it is written
            # and stop with the error naming the file; started again, it reads the token.
            try:
                final = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return False
            with os.fdopen(final, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_or_create_operator_token(
    console: ConsoleSettings, configured: str | None
) -> OperatorToken:
    """The operator token: ``configured`` if set, else the data directory's, made if need be.

    Args:
        console: the console settings (``token_file`` is ``<data_dir>/api-token``).
        configured: ``VOICE_API_TOKEN`` (``None`` when unset).

    Raises:
        OperatorTokenError: the token file exists but is unusable, or the data directory
            or file cannot be created (the message names the path).
    """
    if configured:
        return OperatorToken(configured, "env")
    path = console.token_file.absolute()
    for _ in range(3):
        try:
            return OperatorToken(read_token_file(path), "file", path)
        except FileNotFoundError:
            pass
        try:
            # 0700 for a directory made here: it holds the token and the recordings.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            token = secrets.token_urlsafe(_TOKEN_BYTES)
            if _create_exclusive(path, token):
                log.info("operator token generated and kept in %s", path)
                return OperatorToken(token, "generated", path)
        except OSError as exc:
            raise OperatorTokenError(
                f"cannot create the operator token file {path}: {exc.strerror or exc} "
                "(set VOICE_DATA_DIR to a writable directory, or set VOICE_API_TOKEN)"
            ) from None
        # Another process created it between our read and our write: read theirs.
    return OperatorToken(read_token_file(path), "file", path)


def find_operator_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The token a client on this machine should present, if it can find one.

    ``VOICE_API_TOKEN`` first, else the token file of ``VOICE_DATA_DIR`` (default
    ``./var``), as the server itself would. Used by ``realtime-voice dial`` and the
    test caller.

    Args:
        environ: the environment (default: this process's).

    Returns:
        The token, or ``None`` when neither exists or the file is unusable.
    """
    env = os.environ if environ is None else environ
    configured = (env.get("VOICE_API_TOKEN") or "").strip()
    if configured:
        return configured
    data_dir = (env.get("VOICE_DATA_DIR") or "").strip() or "./var"
    try:
        return read_token_file(ConsoleSettings(data_dir=data_dir).token_file)
    except (FileNotFoundError, OperatorTokenError):
        return None
