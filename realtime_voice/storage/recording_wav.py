"""Recording files on disk: stereo 16-bit WAV, safe names, header repair, retention.

One file per call, ``<recordings dir>/<sha256 of the call id>.wav`` (mode 0600): call ids
come from carriers and are never trusted as path parts, so the name is a hash of it (hex
only, so no traversal, and no caller's id is readable in a directory listing).

A recording is written as the call goes (`realtime_voice.storage.recording`): samples are
appended continuously and the RIFF and ``data`` sizes in the 44-byte header are rewritten
about once a second and at the end. A process that dies mid-call therefore leaves a file
whose header understates its length. `RecordingFiles.info` repairs the header from the
file's length on every open (cheap: one ``stat``, a 44-byte read, at most one 8-byte
write), which also gives a live call's recording a header that matches what is on disk
so far. Both header writers hold `RecordingFiles.header_lock`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CHANNELS",
    "FRAME_BYTES",
    "HEADER_BYTES",
    "MAX_DATA_BYTES",
    "RecordingFiles",
    "RecordingInfo",
    "WavHeader",
    "parse_header",
    "wav_header",
]

log = logging.getLogger(__name__)

HEADER_BYTES: Final = 44
"""A canonical PCM WAV header: RIFF, ``fmt `` (16 bytes), then ``data``."""
CHANNELS: Final = 2
"""Caller on the left, bot on the right."""
FRAME_BYTES: Final = 4
"""One stereo sample frame: two little-endian int16."""
MAX_DATA_BYTES: Final = (0xFFFFFFFF - 36) // FRAME_BYTES * FRAME_BYTES
"""RIFF sizes are 32-bit: about 18 h at 16 kHz, 37 h at 8 kHz; the writer stops there."""

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_RIFF_SIZE_AT: Final = 4
_DATA_SIZE_AT: Final = 40
_PCM: Final = 1


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """The 44-byte header of a stereo 16-bit PCM WAV holding ``data_bytes`` of samples."""
    data_bytes = min(data_bytes, MAX_DATA_BYTES)
    return _HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, _PCM, CHANNELS, sample_rate,
        sample_rate * FRAME_BYTES, FRAME_BYTES, 16, b"data", data_bytes,
    )


def size_fields(data_bytes: int) -> tuple[bytes, bytes]:
    """The RIFF size and ``data`` size fields (4 bytes each) for ``data_bytes``."""
    data_bytes = min(data_bytes, MAX_DATA_BYTES)
    return struct.pack("<I", 36 + data_bytes), struct.pack("<I", data_bytes)


def write_sizes(fd: int, data_bytes: int) -> None:
    """Rewrite a recording's two size fields in place (``pwrite``: the offset stays)."""
    riff, data = size_fields(data_bytes)
    os.pwrite(fd, riff, _RIFF_SIZE_AT)
    os.pwrite(fd, data, _DATA_SIZE_AT)


@dataclass(frozen=True, slots=True)
class WavHeader:
    """What a recording's header says.

    Attributes:
        sample_rate: samples per second per channel.
        data_bytes: the ``data`` chunk's size as written in the header.
    """

    sample_rate: int
    data_bytes: int


def parse_header(head: bytes) -> WavHeader | None:
    """Read a header this module wrote; ``None`` for anything else (too short, not ours)."""
    if len(head) < HEADER_BYTES:
        return None
    (riff, _, wave, fmt, fmt_size, codec, channels, rate, byte_rate, align, bits, data,
     data_bytes) = _HEADER.unpack_from(head)
    if (riff, wave, fmt, data) != (b"RIFF", b"WAVE", b"fmt ", b"data"):
        return None
    if (fmt_size, codec, channels, bits, align) != (16, _PCM, CHANNELS, 16, FRAME_BYTES):
        return None
    if rate <= 0 or byte_rate != rate * FRAME_BYTES:
        return None
    return WavHeader(sample_rate=rate, data_bytes=data_bytes)


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """A recording as the API describes it.

    Attributes:
        path: the file.
        bytes: the file's size (header included).
        sample_rate: samples per second per channel.
        duration_s: seconds of audio in it.
    """

    path: Path
    bytes: int
    sample_rate: int
    duration_s: float


class RecordingFiles:
    """The recordings directory: where a call's file is, what it holds, erasure, retention.

    Blocking (file system calls): use from a worker thread or `asyncio.to_thread`.

    Args:
        directory: where the recordings are (created with mode 0700 on first write).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.header_lock = threading.Lock()
        """Held while a header's size fields are rewritten (the writer and `info`)."""

    @staticmethod
    def file_name(call_id: str) -> str:
        """The recording's file name: a hash of the (untrusted) call id, hex only."""
        digest = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{digest[:40]}.wav"

    def path_for(self, call_id: str) -> Path:
        """Where the call's recording is (or would be)."""
        return self.directory / self.file_name(call_id)

    def create(self, call_id: str, sample_rate: int) -> int:
        """Start a call's recording (an empty WAV), replacing any older file of that id.

        Returns:
            The open file descriptor, positioned after the header, for appending samples.

        Raises:
            OSError: the directory or file cannot be written.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(
            self.path_for(call_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(fd, wav_header(sample_rate, 0))
        except OSError:
            os.close(fd)
            raise
        return fd

    def info(self, call_id: str) -> RecordingInfo | None:
        """The call's recording, its header first made to match its length; or ``None``."""
        path = self.path_for(call_id)
        try:
            with open(path, "r+b") as fh:
                head = fh.read(HEADER_BYTES)
                size = os.fstat(fh.fileno()).st_size
                header = parse_header(head)
                if header is None:
                    return None
                data_bytes = min((size - HEADER_BYTES) // FRAME_BYTES * FRAME_BYTES,
                                 MAX_DATA_BYTES)
                if header.data_bytes != data_bytes:
                    # A crash (or a live call between two header updates) left it short.
                    with self.header_lock:
                        write_sizes(fh.fileno(), data_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("recording %s unreadable: %s", path.name, exc)
            return None
        return RecordingInfo(
            path=path,
            bytes=size,
            sample_rate=header.sample_rate,
            duration_s=data_bytes / (header.sample_rate * FRAME_BYTES),
        )

    def delete(self, call_id: str) -> bool:
        """Remove the call's recording. Returns whether there was one."""
        try:
            self.path_for(call_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def sweep(self, retention_days: float, *, now: float | None = None) -> int:
        """Delete recordings last written more than ``retention_days`` ago (0: keep all).

        Returns:
            How many were deleted.
        """
        if retention_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - retention_days * 86400.0
        deleted = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.endswith(".wav") or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    deleted += 1
        if deleted:
            log.info("retention: %d recording(s) older than %g day(s) deleted",
                     deleted, retention_days)
        return deleted
