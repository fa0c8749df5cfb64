"""A durable local spool: records the database could not take, kept on disk in order.

Layout of the spool directory::

    .lock                       held (flock) by the one process using this spool
    segment-000000000001.jsonl  one record per line, appended, fsync'd per batch
    segment-000000000001.pos    bytes of that segment already replayed (atomic rewrite)
    rejected.jsonl              lines the database refused or that could not be parsed

Records are read from the oldest segment at its replayed position and the position only
moves on after the database committed them (`commit`), so a crash between the commit and
the position update replays a few records twice: harmless, the writes are idempotent.
The spool knows lines, not records: encoding is `records.record_to_json`'s job.

Not safe for two processes: `open` takes an exclusive lock on the directory and raises
`SpoolLockedError` if another process holds it. One instance may be used from several
threads (every public method takes the instance's lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Spool", "SpoolChunk", "SpoolError", "SpoolFullError", "SpoolLockedError"]

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^segment-(\d{12})\.jsonl$")
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
REJECTED_MAX_BYTES = 64 * 1024 * 1024


class SpoolError(OSError):
    """The spool cannot be used."""


class SpoolLockedError(SpoolError):
    """Another process holds this spool directory."""


class SpoolFullError(SpoolError):
    """Appending would exceed the spool's size limit; nothing was written."""


@dataclass(frozen=True, slots=True)
class SpoolChunk:
    """Lines read from the spool, to `Spool.commit` once the database has them.

    Attributes:
        lines: the records' JSON lines (no newline), oldest first.
        segment: the segment file they came from.
        end_offset: the segment position just after the last line.
    """

    lines: list[str]
    segment: Path
    end_offset: int


def _fsync_dir(path: Path) -> None:
    # A new or renamed file survives a power cut only once its directory entry is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """An append-only, size-bounded, crash-safe queue of JSON lines in a directory.

    Args:
        directory: where the segments live (created if missing).
        max_bytes: total size of the segments beyond which `append` refuses.
        segment_bytes: a segment this large is closed and a new one started.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._segments: list[Path] = []  # oldest first
        self._positions: dict[Path, int] = {}
        self._sizes: dict[Path, int] = {}
        self._active: IO[bytes] | None = None  # append handle of the newest segment
        self._next_index = 1
        self._depth = 0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> int:
        """Lock the directory and take stock of what a previous process left.

        Returns:
            The number of records waiting to be replayed.

        Raises:
            SpoolLockedError: another process uses this directory.
            SpoolError: the directory cannot be created or read.
        """
        with self._lock:
            if self._lock_file is not None:
                return self._depth
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                lock_file = open(self.directory / ".lock", "ab")  # noqa: SIM115 - held open
            except OSError as exc:
                raise SpoolError(f"cannot use spool directory {self.directory}: {exc}") from exc
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                lock_file.close()
                raise SpoolLockedError(
                    f"spool directory {self.directory} is in use by another process"
                ) from exc
            self._lock_file = lock_file
            self._scan()
            return self._depth

    def close(self) -> None:
        """Close the files and release the directory lock (the records stay on disk)."""
        with self._lock:
            if self._active is not None:
                self._active.close()
                self._active = None
            if self._lock_file is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def _scan(self) -> None:
        found: list[tuple[int, Path]] = []
        for path in self.directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        found.sort()
        self._segments = [path for _, path in found]
        self._next_index = (found[-1][0] + 1) if found else 1
        self._depth = 0
        for path in self._segments:
            size = self._repair_tail(path)
            position = min(self._read_position(path), size)
            self._sizes[path] = size
            self._positions[path] = position
            with open(path, "rb") as fh:
                fh.seek(position)
                blocks = iter(lambda: fh.read(1 << 20), b"")
                self._depth += sum(block.count(b"\n") for block in blocks)
        # Segments left fully replayed by a crash before their deletion go now.
        for path in list(self._segments):
            if self._positions[path] >= self._sizes[path]:
                self._delete_segment(path)

    def _repair_tail(self, path: Path) -> int:
        """Cut a torn last line (a crash in the middle of an append) and return the size."""
        size = path.stat().st_size
        if size == 0:
            return 0
        with open(path, "r+b") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return size
            # Walk back to the last complete line.
            block = 1 << 16
            end = size
            keep = 0
            while end > 0:
                start = max(0, end - block)
                fh.seek(start)
                data = fh.read(end - start)
                nl = data.rfind(b"\n")
                if nl >= 0:
                    keep = start + nl + 1
                    break
                end = start
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning(
            "spool %s ended in a torn line (%d bytes) from an interrupted write: dropped it",
            path.name, size - keep,
        )
        return keep

    @staticmethod
    def _position_file(segment: Path) -> Path:
        return segment.with_suffix(".pos")

    def _read_position(self, segment: Path) -> int:
        try:
            return max(0, int(self._position_file(segment).read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            return 0

    # ------------------------------------------------------------------ state

    @property
    def depth(self) -> int:
        """Records waiting to be replayed."""
        return self._depth

    @property
    def pending(self) -> bool:
        """Some records wait to be replayed."""
        return self._depth > 0

    @property
    def size_bytes(self) -> int:
        """Bytes of segment files on disk (replayed parts of the oldest included)."""
        return sum(self._sizes.values())

    # ------------------------------------------------------------------ writing

    def append(self, lines: Sequence[str]) -> None:
        """Append lines and fsync them: once this returns they survive a crash.

        Raises:
            SpoolFullError: the lines would take the spool over ``max_bytes``.
            SpoolError: the spool is not open, or writing failed.
        """
        if not lines:
            return
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        if data.count(b"\n") != len(lines):
            raise ValueError("a spool line must not contain a newline")
        with self._lock:
            if self._lock_file is None:
                raise SpoolError("spool is not open")
            if self.size_bytes + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"spool {self.directory} is full ({self.size_bytes} of "
                    f"{self.max_bytes} bytes)"
                )
            try:
                handle, path = self._writable_segment()
            except OSError as exc:
                raise SpoolError(f"cannot write spool {self.directory}: {exc}") from exc
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                # Cut what part of the batch got written (disk full...): a partial line
                # would glue itself to the next append and corrupt both.
                with contextlib.suppress(OSError):
                    handle.truncate(self._sizes[path])
                raise SpoolError(f"cannot write spool {self.directory}: {exc}") from exc
            self._sizes[path] += len(data)
            self._depth += len(lines)

    def _writable_segment(self) -> tuple[IO[bytes], Path]:
        if self._active is not None and self._segments:
            path = self._segments[-1]
            if self._sizes[path] < self.segment_bytes:
                return self._active, path
            self._active.close()
            self._active = None
        path = self.directory / f"segment-{self._next_index:012d}.jsonl"
        self._next_index += 1
        handle = open(path, "ab")  # noqa: SIM115 - kept open for appends
        _fsync_dir(self.directory)
        self._segments.append(path)
        self._sizes[path] = 0
        self._positions[path] = 0
        self._active = handle
        return handle, path

    # ------------------------------------------------------------------ replaying

    def peek(self, max_records: int) -> SpoolChunk | None:
        """The oldest records not yet committed (at most ``max_records``, one segment).

        Returns:
            A chunk, or ``None`` when nothing is waiting.
        """
        with self._lock:
            while self._segments:
                path = self._segments[0]
                position = self._positions[path]
                if position >= self._sizes[path]:
                    if self._is_active(path):
                        return None
                    self._delete_segment(path)
                    continue
                lines: list[str] = []
                offset = position
                with open(path, "rb") as fh:
                    fh.seek(position)
                    while len(lines) < max_records and offset < self._sizes[path]:
                        raw = fh.readline()
                        if not raw.endswith(b"\n"):
                            break  # only whole lines count (the size bound makes this rare)
                        offset += len(raw)
                        lines.append(raw[:-1].decode("utf-8", errors="replace"))
                if not lines:
                    if self._is_active(path):
                        return None
                    log.error("spool %s: unreadable tail skipped", path.name)
                    self._delete_segment(path)
                    continue
                return SpoolChunk(lines=lines, segment=path, end_offset=offset)
            return None

    def commit(self, chunk: SpoolChunk) -> None:
        """Mark a chunk's records as in the database; a finished segment is deleted."""
        with self._lock:
            path = chunk.segment
            if path not in self._positions or chunk.end_offset <= self._positions[path]:
                return  # already committed
            self._positions[path] = chunk.end_offset
            self._depth = max(0, self._depth - len(chunk.lines))
            if chunk.end_offset >= self._sizes[path]:
                self._delete_segment(path)
                return
            tmp = self._position_file(path).with_suffix(".pos.tmp")
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(str(chunk.end_offset))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._position_file(path))

    def _is_active(self, path: Path) -> bool:
        return self._active is not None and bool(self._segments) and self._segments[-1] == path

    def _delete_segment(self, path: Path) -> None:
        if self._is_active(path) and self._active is not None:
            self._active.close()
            self._active = None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._position_file(path).unlink()
        self._segments.remove(path)
        self._positions.pop(path, None)
        self._sizes.pop(path, None)

    # ------------------------------------------------------------------ dead letters

    def reject(self, lines: Sequence[str], reason: str) -> None:
        """Keep lines that can never be written (refused by the database, unparseable).

        They go to ``rejected.jsonl`` for a human to look at, never replayed; the file is
        capped so a stream of bad records cannot fill the disk.
        """
        if not lines:
            return
        path = self.directory / "rejected.jsonl"
        with self._lock:
            try:
                size = path.stat().st_size if path.exists() else 0
                data = "".join(line.replace("\n", " ") + "\n" for line in lines).encode()
                if size + len(data) > REJECTED_MAX_BYTES:
                    log.error("%s is full: %d rejected record(s) not kept (%s)",
                              path, len(lines), reason)
                    return
                with open(path, "ab") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc)
