"""Deduplication and per-session ordering of webhook notifications (pure, clock injected).

RingCentral may deliver a notification twice and out of order (docs/RINGCENTRAL.md §1.4):
`SeenSet` remembers notification uuids for a while, and `ReorderBuffer` holds each
telephony session's events for a short window so a late lower ``sequence`` can still be
applied before a higher one. Sequence numbers are per telephony session but not
contiguous for one subscriber (other parties' events are not delivered), so a gap cannot
be waited out; only the time window can. An event that arrives after a higher sequence of
its session was already released is *late* and reported as such, never applied: the newer
state already superseded it.

Both structures are bounded: old entries are evicted first, so memory stays flat however
many calls go by.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["PushResult", "ReorderBuffer", "SeenSet"]

T = TypeVar("T")


class SeenSet:
    """A set of keys that forgets each key after ``ttl_s`` and holds at most ``max_items``.

    Args:
        ttl_s: how long a key is remembered.
        max_items: the bound; the oldest keys are dropped first when it is reached.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, *, ttl_s: float, max_items: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s <= 0 or max_items <= 0:
            raise ValueError("ttl_s and max_items must be positive")
        self._ttl = ttl_s
        self._max = max_items
        self._clock = clock
        # Insertion order == expiry order because the TTL is the same for every key.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, key: str) -> bool:
        """Remember ``key``; False when it was already remembered (a duplicate)."""
        now = self._clock()
        self._prune(now)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    def discard(self, key: str) -> None:
        """Forget ``key`` (its notification could not be taken, so a retry must be)."""
        self._expiry.pop(key, None)

    def _prune(self, now: float) -> None:
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[key]


@dataclass(frozen=True, slots=True)
class PushResult(Generic[T]):
    """What `ReorderBuffer.push` decided.

    Attributes:
        ready: items to apply now, in order (the pushed one may be among them).
        late: the pushed item came after a higher sequence of its session was released;
            it was dropped.
    """

    ready: list[T]
    late: bool = False


@dataclass
class _Session(Generic[T]):
    released: int | None = None  # highest sequence handed out
    pending: list[tuple[int, int, float, T]] = field(default_factory=list)  # heap


class ReorderBuffer(Generic[T]):
    """Per-key reordering by sequence number within a time window.

    Args:
        window_s: how long an item waits for lower sequences of its key.
        max_keys: sessions remembered (least recently used forgotten first).
        max_pending: items held per key; beyond it the lowest is released at once.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        window_s: float,
        max_keys: int = 10_000,
        max_pending: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s < 0 or max_keys <= 0 or max_pending <= 0:
            raise ValueError("window_s must be >= 0, max_keys and max_pending positive")
        self._window = window_s
        self._max_keys = max_keys
        self._max_pending = max_pending
        self._clock = clock
        self._sessions: OrderedDict[str, _Session[T]] = OrderedDict()
        self._tiebreak = itertools.count()
        self._held = 0

    @property
    def held(self) -> int:
        """Items waiting in the buffer."""
        return self._held

    def push(self, key: str, sequence: int, item: T) -> PushResult[T]:
        """Offer one item.

        An item whose sequence directly follows the last released one of its key, with
        nothing held, is released at once (nothing can belong between them). Others wait
        for the window.
        """
        session = self._session(key)
        if session.released is not None and sequence <= session.released:
            return PushResult([], late=True)
        if not session.pending and session.released is not None and (
            sequence == session.released + 1 or self._window == 0
        ):
            session.released = sequence
            return PushResult([item])
        heapq.heappush(
            session.pending, (sequence, next(self._tiebreak), self._clock() + self._window, item)
        )
        self._held += 1
        ready: list[T] = []
        while len(session.pending) > self._max_pending:
            ready.append(self._pop(session))
        if self._window == 0:
            ready.extend(self._pop(session) for _ in range(len(session.pending)))
        return PushResult(ready)

    def due(self) -> list[T]:
        """Release every item whose window has passed, with the lower sequences held
        beside it, in sequence order per key."""
        now = self._clock()
        ready: list[T] = []
        for session in self._sessions.values():
            if not session.pending:
                continue
            ripe = [seq for seq, _, deadline, _ in session.pending if deadline <= now]
            if not ripe:
                continue
            # Lower sequences not yet due go out too: holding them longer would only make
            # them late once the ripe higher one is released.
            limit = max(ripe)
            while session.pending and session.pending[0][0] <= limit:
                ready.append(self._pop(session))
        return ready

    def flush(self) -> list[T]:
        """Release everything held, in sequence order per key (at shutdown)."""
        ready: list[T] = []
        for session in self._sessions.values():
            while session.pending:
                ready.append(self._pop(session))
        return ready

    def next_deadline(self) -> float | None:
        """The earliest moment `due` will release something (None when nothing is held)."""
        deadlines = [
            min(deadline for _, _, deadline, _ in s.pending)
            for s in self._sessions.values()
            if s.pending
        ]
        return min(deadlines) if deadlines else None

    def _pop(self, session: _Session[T]) -> T:
        sequence, _, _, item = heapq.heappop(session.pending)
        self._held -= 1
        if session.released is None or sequence > session.released:
            session.released = sequence
        return item

    def _session(self, key: str) -> _Session[T]:
        session = self._sessions.get(key)
        if session is None:
            session = _Session()
            self._sessions[key] = session
            self._evict()
        else:
            self._sessions.move_to_end(key)
        return session

    def _evict(self) -> None:
        while len(self._sessions) > self._max_keys:
            # Forget the least recently used session that holds nothing; a session with
            # held items is kept (its items must still come out).
            for key, session in self._sessions.items():
                if not session.pending:
                    del self._sessions[key]
                    break
            else:
                return
