"""The loop side every streaming recogniser shares: results to one consumer, one stop.

A `SpeechToText` produces speech events on the event loop (the Deepgram bridge receives
them from its threads, the offline recogniser from its decodes) and one consumer, the
call session, drains them through ``events()`` until the stream stops or fails.
`SpeechEventStream` is that hand-off and the stop lifecycle around it; a recogniser
subclasses it and implements ``start``, ``send_audio``, ``finalize`` and `_stop`.

Overflow policy (the producer never waits, memory never grows without bound): at most
``EVENT_QUEUE_SIZE`` (256) items wait for the consumer. When it falls behind, interim
results are dropped first, once the queue is half full (a later interim or the final
supersedes them); then any event, at one slot short of full (counted in
`SpeechEventStream.dropped_events`, logged at ERROR). The last slot is kept for what
ends the stream, the end marker or the failure, so `stop` can always end ``events()``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator
from typing import ClassVar, Final

from realtime_voice.providers.base import SpeechEvent, SttError, TranscriptResult

__all__ = ["EVENT_QUEUE_SIZE", "SpeechEventStream"]

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE: Final = 256
"""Items waiting for the consumer at most, the end marker (or failure) included."""


class _End:
    """The end-of-stream marker: ``events()`` returns when it reaches it."""


_END: Final = _End()


class SpeechEventStream(abc.ABC):
    """Base of the `SpeechToText` implementations: the event queue and the stop lifecycle.

    Subclasses hand events over with `_emit` (on the event loop), end the stream with
    `_end_events` or `_fail_events`, and implement `_stop`; `stop` runs it once.
    """

    _label: ClassVar[str] = "STT"
    """Names the recogniser in this module's log lines."""

    def __init__(self) -> None:
        self._events: asyncio.Queue[SpeechEvent | SttError | _End] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self._closed = False  # the end marker or the failure is queued: nothing follows
        self._ended = False  # events() reached it
        self._stop_task: asyncio.Task[None] | None = None
        self.dropped_events = 0
        """Events discarded because the consumer fell behind (interims first)."""

    async def events(self) -> AsyncIterator[SpeechEvent]:
        """Speech events in order; ends after `stop`.

        Once it has ended (or raised), a new iteration ends at once.

        Raises:
            SttError: the stream failed for good (after the events before the failure);
                the subclass documents its own error type.
        """
        while not self._ended:
            item = await self._events.get()
            if isinstance(item, _End):
                self._ended = True
                return
            if isinstance(item, SttError):
                self._ended = True
                raise item
            yield item

    async def stop(self) -> None:
        """End the stream and release everything (`_stop`). Idempotent.

        The first call runs `_stop` in a task; every call, that one included, waits for
        it. The wait is shielded: a caller cancelled while waiting leaves the stop to
        finish on its own instead of half done, and a later call still waits for it.
        """
        if self._stop_task is None:
            self._begin_stop()
            self._stop_task = asyncio.get_running_loop().create_task(self._stop())
        await asyncio.shield(self._stop_task)

    def _begin_stop(self) -> None:  # noqa: B027 - an optional hook, empty on purpose
        """Run by the first `stop`, before it yields: refuse new work from now on.

        Does nothing unless a subclass needs the refusal to start before `_stop` runs.
        """

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Release everything and see that ``events()`` ends. Runs once, as a task."""

    def _emit(self, event: SpeechEvent) -> None:
        """Queue ``event`` for the consumer, or drop it when the consumer is behind.

        Ignored once the stream has ended (nothing after the end can be delivered).
        """
        if self._closed:
            return
        size = self._events.qsize()
        interim = isinstance(event, TranscriptResult) and not event.is_final
        limit = EVENT_QUEUE_SIZE // 2 if interim else EVENT_QUEUE_SIZE - 1
        if size >= limit:
            self.dropped_events += 1
            # Dropped interims are routine under load; a dropped final loses words.
            level = logging.DEBUG if interim else logging.ERROR
            log.log(level, "%s consumer is behind: %s dropped", self._label, type(event).__name__)
            return
        self._events.put_nowait(event)

    def _end_events(self) -> None:
        """End ``events()`` after the events already queued. Idempotent."""
        if not self._closed:
            self._closed = True
            self._events.put_nowait(_END)

    def _fail_events(self, error: SttError) -> None:
        """Make ``events()`` raise ``error`` after the events already queued.

        Ends the stream like `_end_events`; ignored if it has already ended.
        """
        if not self._closed:
            self._closed = True
            self._events.put_nowait(error)
