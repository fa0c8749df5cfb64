"""The recorder's synchronous core: write a batch or spool it; replay the spool in order.

Rules that keep records in order and never lose one:

- While anything waits in the spool, new batches go to the spool too (behind it), so the
  database always receives records in the order they were made.
- A batch that fails for a transient reason is retried briefly (tenacity), then spooled,
  and the pipeline is marked down: later batches are spooled at once, without waiting on
  a dead database, until `recover` finds it back.
- A batch the database refuses for a reason of its own (a constraint, a value that does
  not fit) is written record by record so the one bad record is set aside in
  ``rejected.jsonl`` and the rest still land.

Not thread-safe and blocking: the recorder runs it in one worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from realtime_voice.storage.records import (
    Record,
    RecordFormatError,
    record_from_json,
    record_to_json,
)
from realtime_voice.storage.spool import Spool, SpoolError, SpoolFullError
from realtime_voice.storage.writer import RecordWriter, describe_error, is_transient

__all__ = ["RecordPipeline", "RecorderCounters", "RetryPolicy"]

log = logging.getLogger("realtime_voice.storage.recorder")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try a batch before spooling it: short, so the queue never backs up.

    Attributes:
        attempts: tries per batch (1 = no retry).
        initial_wait_s: wait after the first failure; doubles per retry.
        max_wait_s: cap on one wait.
    """

    attempts: int = 3
    initial_wait_s: float = 0.05
    max_wait_s: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError("attempts must be >= 1 and waits >= 0")

    def retrying(self) -> Retrying:
        """A tenacity controller retrying transient database errors only."""
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.initial_wait_s, max=self.max_wait_s),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )


@dataclass
class RecorderCounters:
    """Records by fate, since start (for metrics and tests).

    Attributes:
        written: written straight to the database.
        spooled: appended to the spool.
        replayed: written to the database from the spool.
        failed: refused by the database or unreadable in the spool (kept in rejected.jsonl).
        dropped: lost: the queue or the spool was full, or the spool could not be written.
    """

    written: int = 0
    spooled: int = 0
    replayed: int = 0
    failed: int = 0
    dropped: int = 0


class _TransientDuring(Exception):
    """The database went away while writing records one by one."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(describe_error(cause))
        self.index = index
        self.cause = cause


class RecordPipeline:
    """Decides each batch's fate: database, spool, or set aside.

    Args:
        writer: applies batches to the database.
        spool: the open spool.
        batch_size: records per replayed chunk.
        retry: retry policy for live batches.
        counters: where to count (shared with the recorder).
    """

    def __init__(
        self,
        writer: RecordWriter,
        spool: Spool,
        *,
        batch_size: int,
        retry: RetryPolicy,
        counters: RecorderCounters,
    ) -> None:
        self.writer = writer
        self.spool = spool
        self.batch_size = batch_size
        self.retry = retry
        self.counters = counters
        self.down = False
        self.spool_only = False
        """Set when closing ran out of time: everything left goes to the spool."""
        self._full_logged = False
        self._replaying = False

    # ------------------------------------------------------------------ live batches

    def submit(self, batch: Sequence[Record]) -> None:
        """Write ``batch`` (after the spool, if anything waits there) or spool it."""
        if not batch:
            return
        if self.spool_only:
            self._to_spool(batch)
            return
        if self.spool.pending and not self.down:
            self.recover()
        if self.spool.pending or self.down:
            self._to_spool(batch)
            return
        try:
            self.retry.retrying()(self.writer.write, batch)
        except Exception as exc:
            if is_transient(exc):
                self._mark_down(exc)
                self._to_spool(batch)
                return
            self._write_isolating(batch, on_written=self._count_written, spool_rest=True)
            return
        self.counters.written += len(batch)
        self._mark_up()

    def _count_written(self, n: int) -> None:
        self.counters.written += n

    def _count_replayed(self, n: int) -> None:
        self.counters.replayed += n

    def _write_isolating(
        self, records: Sequence[Record], *, on_written: Callable[[int], None], spool_rest: bool
    ) -> bool:
        """Write one by one, setting aside the records the database refuses.

        Returns:
            True if every record was written or set aside; False if the database went
            away part-way (the rest were spooled when ``spool_rest``).
        """
        for index, record in enumerate(records):
            try:
                self.writer.write([record])
            except Exception as exc:
                if is_transient(exc):
                    self._mark_down(exc)
                    if spool_rest:
                        self._to_spool(records[index:])
                    return False
                self._reject([record_to_json(record)], describe_error(exc))
                continue
            on_written(1)
        return True

    def _reject(self, lines: Sequence[str], reason: str) -> None:
        self.counters.failed += len(lines)
        log.error(
            "%d record(s) refused (%s): kept in %s/rejected.jsonl, not retried",
            len(lines), reason, self.spool.directory,
        )
        self.spool.reject(lines, reason)

    def _to_spool(self, records: Sequence[Record]) -> None:
        lines = [record_to_json(record) for record in records]
        try:
            self.spool.append(lines)
        except SpoolFullError as exc:
            self.counters.dropped += len(lines)
            if not self._full_logged:
                self._full_logged = True
                log.error(
                    "%s: dropping call records until the database is back or the spool "
                    "drains (raise VOICE_SPOOL_MAX_BYTES to keep more)", exc,
                )
            return
        except SpoolError as exc:
            self.counters.dropped += len(lines)
            log.error("%d call record(s) lost: %s", len(lines), exc)
            return
        self._full_logged = False
        self.counters.spooled += len(lines)

    # ------------------------------------------------------------------ recovery

    def check(self) -> bool:
        """Probe the database now; marks the pipeline down or up accordingly."""
        try:
            self.writer.probe()
        except Exception as exc:
            self._mark_down(exc)
            return False
        self._mark_up()
        return True

    def recover(self, max_chunks: int = 10) -> None:
        """Replay up to ``max_chunks`` chunks of the spool, or probe the database.

        Leaves `down` set when the database is still unreachable.
        """
        if self.spool_only:
            return
        if not self.spool.pending:
            if self.down:
                self.check()
            return
        for _ in range(max_chunks):
            chunk = self.spool.peek(self.batch_size)
            if chunk is None:
                break
            records: list[Record] = []
            unreadable: list[str] = []
            for line in chunk.lines:
                try:
                    records.append(record_from_json(line))
                except RecordFormatError as exc:
                    unreadable.append(line)
                    log.error("spooled line unreadable (%s)", exc)
            if not self._replay_records(records):
                return
            if unreadable:
                self._reject(unreadable, "unreadable spool line")
            self.spool.commit(chunk)
        if not self.spool.pending and self._replaying:
            self._replaying = False
            log.info("spool replayed: %d record(s) recovered in total", self.counters.replayed)

    def _replay_records(self, records: Sequence[Record]) -> bool:
        waiting = self.spool.depth
        try:
            # One attempt: the probe interval is the retry loop while the database is down.
            self.writer.write(records)
        except Exception as exc:
            if is_transient(exc):
                self._mark_down(exc)
                return False
            if not self._write_isolating(
                records, on_written=self._count_replayed, spool_rest=False
            ):
                return False
        else:
            self.counters.replayed += len(records)
        self._mark_up()
        if not self._replaying:
            self._replaying = True
            log.info("replaying %d spooled call record(s) into the database", waiting)
        return True

    # ------------------------------------------------------------------ state

    def _mark_down(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            self._replaying = False
            log.warning(
                "database unavailable (%s): keeping call records in the spool at %s",
                describe_error(exc), self.spool.directory,
            )

    def _mark_up(self) -> None:
        if self.down:
            self.down = False
            log.info("database available again")
