"""`CallRecorder`: the call database's writer, off the call's hot path and outage-proof.

The session calls synchronous methods that only append to an in-memory queue. One
background task takes batches from it and hands them to one worker thread, which writes
them with the synchronous SQLAlchemy engine (or spools them, see `pipeline`). The event
loop never touches the database or the disk.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from realtime_voice.storage.database import make_engine
from realtime_voice.storage.journal import CallJournal
from realtime_voice.storage.pipeline import RecorderCounters, RecordPipeline, RetryPolicy
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    TurnRecord,
)
from realtime_voice.storage.spool import DEFAULT_MAX_BYTES, Spool
from realtime_voice.storage.writer import RecordWriter

__all__ = ["CallRecorder", "RecorderCounters", "RetryPolicy"]

log = logging.getLogger(__name__)


class CallRecorder:
    """Persists calls, turns and events in batches, through database outages.

    Args:
        url_or_engine: a database URL (an engine is made and owned) or an engine (not
            disposed on close).
        spool_dir: the durable spool's directory (one process per directory).
        batch_size: records per database transaction.
        flush_interval_s: how long a partial batch waits for company before being written.
        retry: retry policy for a failing batch before it is spooled.
        probe_interval_s: how often an unreachable database is probed.
        max_queue: records held in memory; beyond it new records are dropped (and counted).
        spool_max_bytes: size limit of the spool.

    Call the record methods from the event loop's thread. Lifecycle: `start`, then
    `close`; records given before `start` wait for it, records given after `close` are
    dropped with a warning.
    """

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        spool_dir: Path,
        batch_size: int = 100,
        flush_interval_s: float = 0.2,
        retry: RetryPolicy | None = None,
        probe_interval_s: float = 1.0,
        max_queue: int = 50_000,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be positive")
        if flush_interval_s < 0 or probe_interval_s <= 0:
            raise ValueError("flush_interval_s must be >= 0 and probe_interval_s > 0")
        self._owns_engine = not isinstance(url_or_engine, Engine)
        self.engine = (
            url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
        )
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes)
        self.counters = RecorderCounters()
        self._pipeline = RecordPipeline(
            RecordWriter(self.engine),
            self.spool,
            batch_size=batch_size,
            retry=retry or RetryPolicy(),
            counters=self.counters,
        )
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.probe_interval_s = probe_interval_s
        self.max_queue = max_queue
        self._queue: collections.deque[Record] = collections.deque()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._spool_empty = asyncio.Event()
        self._enqueued = 0
        self._done = 0  # records whose fate is settled (written, spooled or dropped)
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._urgent = False
        self._closing = False
        self._closed = False
        self._next_probe = 0.0
        self._dropped_after_close_logged = False

    # ------------------------------------------------------------------ the session's API

    def call_started(self, record: CallStart) -> None:
        """A call began (non-blocking: the write happens in the background)."""
        self._enqueue(record)

    def call_updated(self, record: CallUpdate) -> None:
        """Some fields of a call changed (non-blocking)."""
        self._enqueue(record)

    def turn(self, record: TurnRecord) -> None:
        """One utterance (non-blocking)."""
        self._enqueue(record)

    def event(self, record: EventRecord) -> None:
        """One call event (non-blocking)."""
        self._enqueue(record)

    def call_ended(self, record: CallEnd) -> None:
        """The call is over (non-blocking)."""
        self._enqueue(record)

    def record(self, record: Record) -> None:
        """Any record (non-blocking)."""
        self._enqueue(record)

    def journal(self, call_id: str) -> CallJournal:
        """A per-call helper that numbers the call's records and hands them here."""
        return CallJournal(self, call_id)

    def _enqueue(self, record: Record) -> None:
        if self._closed or self._closing:
            self.counters.dropped += 1
            if not self._dropped_after_close_logged:
                self._dropped_after_close_logged = True
                log.warning("call record after the recorder closed: dropped")
            return
        if len(self._queue) >= self.max_queue:
            self.counters.dropped += 1
            self._enqueued += 1
            self._done += 1
            if self.counters.dropped == 1 or self.counters.dropped % 1000 == 0:
                log.error(
                    "call record queue full (%d): %d record(s) dropped so far",
                    self.max_queue, self.counters.dropped,
                )
            return
        self._queue.append(record)
        self._enqueued += 1
        self._wakeup.set()
        if len(self._queue) >= self.batch_size:
            self._batch_ready.set()

    # ------------------------------------------------------------------ state

    @property
    def status(self) -> Literal["healthy", "down"]:
        """``down`` while the database is unreachable (records go to the spool)."""
        return "down" if self._pipeline.down else "healthy"

    @property
    def spool_depth(self) -> int:
        """Records waiting in the spool for the database."""
        return self.spool.depth

    @property
    def queue_depth(self) -> int:
        """Records waiting in memory for the writer."""
        return len(self._queue)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the spool (replaying what a previous process left) and start writing.

        Does not fail when the database is down: records are spooled until it is back.

        Raises:
            SpoolLockedError: another process uses ``spool_dir``.
            SpoolError: the spool directory cannot be used.
        """
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="call-recorder"
        )
        try:
            left = await loop.run_in_executor(self._executor, self.spool.open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        if left:
            log.info("%d call record(s) left in the spool by a previous run: replaying", left)
        await loop.run_in_executor(self._executor, self._pipeline.check)
        self._update_events()
        self._task = loop.create_task(self._run(), name="call-recorder")

    async def flush(self) -> None:
        """Wait until every record given so far is written, spooled or dropped.

        Raises:
            RuntimeError: records are waiting but the recorder was never started.
        """
        target = self._enqueued
        if self._done >= target:
            return
        if self._task is None and not self._closed:
            raise RuntimeError("CallRecorder.flush() before start()")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, future))
        self._urgent = True
        self._wakeup.set()
        self._batch_ready.set()
        await future

    async def wait_replayed(self) -> None:
        """Wait until the spool is empty (everything spooled has reached the database)."""
        self._update_events()
        await self._spool_empty.wait()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued; what cannot be written in ``timeout_s`` is spooled.

        Records still in the spool stay there for the next start.
        """
        if self._closed:
            return
        self._closing = True
        task = self._task
        if task is None:
            await self._finish_close()
            return
        self._wakeup.set()
        self._batch_ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            log.error(
                "call records not written within %.1f s of shutdown: spooling the rest",
                timeout_s,
            )
            self._pipeline.spool_only = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            rest = list(self._queue)
            self._queue.clear()
            if rest:
                # The worker thread may still be stuck in a database call: spool from
                # another thread (the spool has its own lock).
                await asyncio.to_thread(self._pipeline.submit, rest)
                self._done += len(rest)
        await self._finish_close()

    async def _finish_close(self) -> None:
        self._closed = True
        self._resolve_flush_waiters(force=True)
        executor = self._executor
        if executor is None:
            if self._owns_engine:
                self.engine.dispose()
            return
        # Queued behind any database call still running, so the lock is released and the
        # engine disposed only once the worker thread is done with them.
        closing = executor.submit(self._release)
        executor.shutdown(wait=False)
        try:
            await asyncio.wait_for(asyncio.wrap_future(closing), 1.0)
        except TimeoutError:
            log.warning("call recorder worker still busy at shutdown; it will release later")
        self._executor = None

    def _release(self) -> None:
        self.spool.close()
        if self._owns_engine:
            self.engine.dispose()

    # ------------------------------------------------------------------ the writer task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        executor = self._executor
        while True:
            if not self._queue:
                if self._closing:
                    break
                await self._wait_for_work()
            if self._queue and len(self._queue) < self.batch_size and not self._hurry():
                # Let a batch form: fewer, larger transactions.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), self.flush_interval_s)
            self._batch_ready.clear()
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            if batch:
                try:
                    await loop.run_in_executor(executor, self._pipeline.submit, batch)
                except Exception:
                    # The pipeline handles database and spool errors itself; this is a bug.
                    log.exception("call recorder failed on a batch of %d record(s)", len(batch))
                    self.counters.dropped += len(batch)
                self._done += len(batch)
                self._update_events()
                self._resolve_flush_waiters()
            if self._needs_recovery() and time.monotonic() >= self._next_probe:
                depth = self.spool.depth
                try:
                    await loop.run_in_executor(executor, self._pipeline.recover)
                except Exception:
                    log.exception("call recorder recovery failed")
                # While the database is back and the spool shrinks, go on at once; otherwise
                # (down, or no progress) wait a probe interval rather than spin.
                progressed = self.spool.depth < depth
                self._next_probe = (
                    0.0
                    if progressed and not self._pipeline.down
                    else time.monotonic() + self.probe_interval_s
                )
                self._update_events()
            if not self._queue:
                self._urgent = False

    def _hurry(self) -> bool:
        return self._urgent or self._closing

    def _needs_recovery(self) -> bool:
        return (self._pipeline.down or self.spool.pending) and not self._closing

    async def _wait_for_work(self) -> None:
        timeout: float | None = None
        if self._needs_recovery():
            timeout = max(0.0, self._next_probe - time.monotonic())
        if timeout == 0.0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        self._wakeup.clear()

    def _update_events(self) -> None:
        if self.spool.pending:
            self._spool_empty.clear()
        else:
            self._spool_empty.set()

    def _resolve_flush_waiters(self, *, force: bool = False) -> None:
        remaining: list[tuple[int, asyncio.Future[None]]] = []
        for target, future in self._flush_waiters:
            if force or self._done >= target:
                if not future.done():
                    future.set_result(None)
            else:
                remaining.append((target, future))
        self._flush_waiters = remaining
