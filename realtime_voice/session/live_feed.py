"""`LiveCallFeed`: what the running calls do, pushed to whoever watches (the ops console).

The feed taps the one stream every call already produces: its journal's records on their
way to the recorder (`tap` wraps the `RecordSink`). A call start becomes ``call_started``,
a change of state or flow ``call_updated``, each turn a ``transcript`` line, the call's
end ``call_ended``. Who is speaking is not a record (it changes every few hundred ms), so
while anyone watches, a poller reads it from the live sessions four times a second and
pushes the changes as ``call_updated``.

Publishing never raises and never blocks a call: each subscriber has a bounded queue,
and one that falls behind is dropped (its stream ends; the console reconnects and gets a
fresh snapshot). With no subscriber, publishing is one emptiness check and no poller runs.
Everything here runs on the event loop's thread, as the sessions do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ai_pipeline.flow_responder import STATE_KEY
from realtime_voice.storage.journal import RecordSink, default_outcome
from realtime_voice.storage.records import CallEnd, CallStart, CallUpdate, Record, TurnRecord

if TYPE_CHECKING:
    from realtime_voice.session.session import CallSession

__all__ = [
    "FeedFullError",
    "LiveCallFeed",
    "LiveEvent",
    "Subscription",
    "live_call_json",
    "speaking_of",
]

log = logging.getLogger(__name__)

EventKind = Literal["call_started", "call_updated", "transcript", "call_ended"]

# The caller counts as speaking for this long after their last voiced frame: VAD frames
# flicker between words, and a 250 ms poll must not see a pause in every syllable gap.
_CALLER_HOLD_S = 0.4


class FeedFullError(Exception):
    """The feed already has its maximum number of subscribers."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One thing that happened on a live call.

    Attributes:
        kind: ``call_started``, ``call_updated``, ``transcript`` or ``call_ended``.
        call_id: the call it happened on.
        data: the event's JSON body (``call_id`` included).
    """

    kind: EventKind
    call_id: str
    data: dict[str, Any]


@dataclass(eq=False)
class Subscription:
    """One watcher's bounded queue of events; iterate it with `next`.

    Attributes:
        call_id: only this call's events, or every call's when ``None``.
        dropped: the watcher fell behind (or the feed closed) and gets nothing more.
    """

    call_id: str | None
    queue: asyncio.Queue[LiveEvent | None]
    dropped: bool = False
    _feed: LiveCallFeed | None = field(default=None, repr=False)

    async def next(self, timeout_s: float) -> LiveEvent | None:
        """The next event, or ``None`` after ``timeout_s`` with nothing new.

        Raises:
            EOFError: the subscription was dropped or closed.
        """
        if self.dropped and self.queue.empty():
            raise EOFError("subscription closed")
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None
        if event is None:
            raise EOFError("subscription closed")
        return event

    def close(self) -> None:
        """Stop receiving (idempotent)."""
        if self._feed is not None:
            self._feed._remove(self)
            self._feed = None


def speaking_of(session: CallSession) -> Literal["caller", "bot"] | None:
    """Who is audible on the call now: the caller (even over the bot), the bot, or nobody."""
    voiced = session.input.last_voiced_at
    if voiced is not None and session.call.clock() - voiced < _CALLER_HOLD_S:
        return "caller"
    return "bot" if session.speaker.audible() else None


def _flow_of(session: CallSession) -> str | None:
    state = session.context.state.get(STATE_KEY)
    name = getattr(state, "flow", None)
    if isinstance(name, str):
        return name
    return session.context.custom_parameters.get("flow") or None


def live_call_json(session: CallSession) -> dict[str, Any]:
    """One live call as the live calls API shows it."""
    return {
        "call_id": session.call_id,
        "carrier": session.leg.name,
        "flow": _flow_of(session),
        "state": session.state.value,
        "started_at": session.started_at,
        "duration_s": round(max(0.0, time.time() - session.started_at), 1),
        "speaking": speaking_of(session),
        "from_number": session.context.from_number,
        "to_number": session.context.to_number,
    }


class _TappedSink:
    """A `RecordSink` that hands each record on, then tells the feed about it."""

    def __init__(self, sink: RecordSink, feed: LiveCallFeed) -> None:
        self._sink = sink
        self._feed = feed

    def record(self, record: Record) -> None:
        """Pass ``record`` to the recorder first (the record matters more than the view)."""
        self._sink.record(record)
        self._feed.on_record(record)

    def __getattr__(self, name: str) -> Any:
        # The recorder's other attributes (spool depth, status...) stay reachable.
        return getattr(self._sink, name)


class LiveCallFeed:
    """In-process publish/subscribe of the live calls' events.

    Args:
        sessions: the live sessions (the manager's `sessions`), for snapshots and the
            speaking poller.
        max_subscribers: watchers at once; one more gets `FeedFullError`.
        queue_size: events a watcher may fall behind by before it is dropped.
        poll_interval_s: how often "who is speaking" is read while anyone watches.
    """

    def __init__(
        self,
        sessions: Callable[[], Iterable[CallSession]],
        *,
        max_subscribers: int = 32,
        queue_size: int = 256,
        poll_interval_s: float = 0.25,
    ) -> None:
        self._sessions = sessions
        self.max_subscribers = max_subscribers
        self._queue_size = queue_size
        self._interval = poll_interval_s
        self._subscribers: list[Subscription] = []
        self._poller: asyncio.Task[None] | None = None
        self._seen: dict[str, tuple[str, str | None, str | None]] = {}

    # -- the tap ------------------------------------------------------------------------

    def tap(self, sink: RecordSink) -> RecordSink:
        """``sink`` with this feed listening in on every record written to it."""
        return _TappedSink(sink, self)

    def on_record(self, record: Record) -> None:
        """Turn one call record into a live event, if anyone watches. Never raises."""
        if not self._subscribers:
            return
        try:
            event = _event_of(record)
            if event is not None:
                self.publish(event)
        except Exception:  # the view must never break a call
            log.exception("live feed: record %s not published", type(record).__name__)

    # -- watchers -----------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        """Watchers now."""
        return len(self._subscribers)

    def snapshot(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """The live calls now (only ``call_id``'s when given), oldest first."""
        calls = [
            live_call_json(s) for s in self._sessions()
            if call_id is None or s.call_id == call_id
        ]
        return sorted(calls, key=lambda c: c["started_at"])

    def subscribe(self, call_id: str | None = None) -> Subscription:
        """Start receiving events (only ``call_id``'s when given); `Subscription.close` ends it.

        Raises:
            FeedFullError: ``max_subscribers`` already watch.
        """
        if len(self._subscribers) >= self.max_subscribers:
            raise FeedFullError(f"{self.max_subscribers} watchers already")
        sub = Subscription(call_id, asyncio.Queue(self._queue_size), _feed=self)
        self._subscribers.append(sub)
        if self._poller is None:
            self._seen = {}
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="live-feed-poller"
            )
        return sub

    def publish(self, event: LiveEvent) -> None:
        """Queue ``event`` for every watcher of its call; drop a watcher that is full."""
        for sub in list(self._subscribers):
            if sub.call_id is not None and sub.call_id != event.call_id:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("live feed: a watcher fell %d events behind, dropped",
                            self._queue_size)
                self._drop(sub)

    def close(self) -> None:
        """End every subscription (server shutdown: the streams' handlers return)."""
        for sub in list(self._subscribers):
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        sub.dropped = True
        self._remove(sub)
        # Wake a waiting reader; a full queue already has something to read.
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)

    def _remove(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(sub)
        sub._feed = None
        if not self._subscribers and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    # -- who is speaking ----------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self._publish_changes()
            except Exception:
                log.exception("live feed: poll failed")

    def _publish_changes(self) -> None:
        seen: dict[str, tuple[str, str | None, str | None]] = {}
        for session in self._sessions():
            now = (session.state.value, speaking_of(session), _flow_of(session))
            seen[session.call_id] = now
            before = self._seen.get(session.call_id)
            if before is not None and before != now:
                self.publish(LiveEvent("call_updated", session.call_id, {
                    "call_id": session.call_id, "state": now[0], "speaking": now[1],
                    "flow": now[2],
                }))
        self._seen = seen


def _event_of(record: Record) -> LiveEvent | None:
    """The live event a record means, if any."""
    call_id = record.call_id
    if isinstance(record, CallStart):
        return LiveEvent("call_started", call_id, {
            "call_id": call_id, "carrier": record.protocol, "flow": record.flow,
            "state": record.state, "started_at": record.started_at.timestamp(),
            "duration_s": 0.0, "speaking": None,
            "from_number": record.from_number, "to_number": record.to_number,
        })
    if isinstance(record, CallUpdate):
        changed = {
            name: value
            for name, value in (("state", record.state), ("flow", record.flow))
            if value is not None
        }
        if not changed:
            return None
        return LiveEvent("call_updated", call_id, {"call_id": call_id, **changed})
    if isinstance(record, TurnRecord):
        return LiveEvent("transcript", call_id, {
            "call_id": call_id, "role": record.speaker, "text": record.text, "final": True,
            "interrupted": record.interrupted, "latency_ms": record.latency_ms,
        })
    if isinstance(record, CallEnd):
        outcome = record.outcome or default_outcome(record.state, record.end_reason)
        return LiveEvent("call_ended", call_id, {
            "call_id": call_id, "outcome": outcome, "state": record.state,
            "end_reason": record.end_reason,
        })
    return None
