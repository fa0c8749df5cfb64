"""``POST /api/ringcentral/webhook``: RingCentral's notifications (docs/PROTOCOLS.md §4).

The request path does as little as possible, because RingCentral blacklists a webhook
that answers slowly: the subscription handshake is answered byte for byte
(docs/RINGCENTRAL.md §1.2); a notification is authenticated, parsed, deduplicated by ``uuid``
and queued, and the reply is 200 at once. A background worker then releases each
telephony session's events in ``body.sequence`` order (after a short reorder window) and
applies them: the `CallEventSink` records ringing, answered and ended, and a
Disconnected/Gone party ends the matching live media session if one is still open.

Wiring: build a `RingCentralWebhook` and call `add_ringcentral_routes`, which also starts
and stops the worker with the aiohttp application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.ringcentral.legs import TelephonyLeg
from realtime_voice.security.shared_secret import secret_matches
from realtime_voice.session.manager import CallSessionManager
from webhooks.body import read_body
from webhooks.errors import json_error
from webhooks.ringcentral_events import (
    ENDED_CODES,
    RINGING_CODES,
    NotificationError,
    OtherNotification,
    TelephonySessionEvent,
    parse_notification,
)
from webhooks.ringcentral_ordering import ReorderBuffer, SeenSet

__all__ = [
    "WEBHOOK_PATH",
    "CallEventSink",
    "MemoryCallEventSink",
    "RecordedCallEvent",
    "RingCentralWebhook",
    "WebhookStats",
    "add_ringcentral_routes",
    "session_end_reason",
]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/ringcentral/webhook"
MAX_BODY_BYTES = 256 * 1024
# The whole handshake response must fit in 1024 bytes; aiohttp's own headers take ~150.
MAX_VALIDATION_TOKEN = 512
_TRANSFER_REASONS = frozenset(
    {"BlindTransfer", "RccTransfer", "AttendedTransfer", "DtmfTransfer", "CallRedirected"}
)


class CallEventSink(Protocol):
    """Where telephony session events land (the call recorder implements it).

    Each method is awaited by the webhook's worker, one event at a time in sequence
    order per telephony session; an exception is logged and the next event goes on.
    """

    async def ringing(self, event: TelephonySessionEvent) -> None:
        """An inbound party is being offered (``Setup``/``Proceeding``)."""
        ...

    async def answered(self, event: TelephonySessionEvent) -> None:
        """The party was answered (also sent again after an unhold)."""
        ...

    async def ended(self, event: TelephonySessionEvent, reason: str) -> None:
        """The party is ``Disconnected`` or ``Gone``.

        Args:
            event: the notification.
            reason: RingCentral's ``status.reason`` (``CallFinished``, ``BlindTransfer``,
                ...), or the status code when no reason was given.
        """
        ...


@dataclass(frozen=True, slots=True)
class RecordedCallEvent:
    """One call of `MemoryCallEventSink`.

    Attributes:
        kind: ``ringing``, ``answered`` or ``ended``.
        event: the notification.
        reason: the end reason (``ended`` only).
    """

    kind: str
    event: TelephonySessionEvent
    reason: str | None = None


class MemoryCallEventSink:
    """A `CallEventSink` that keeps everything in memory (tests, and running without SQL).

    Attributes:
        events: every call in the order received.
        states: the last kind seen per telephony session id.
    """

    def __init__(self) -> None:
        self.events: list[RecordedCallEvent] = []
        self.states: dict[str, str] = {}
        self.end_reasons: dict[str, str] = {}

    async def ringing(self, event: TelephonySessionEvent) -> None:
        """Record a ringing party."""
        self._add(RecordedCallEvent("ringing", event))

    async def answered(self, event: TelephonySessionEvent) -> None:
        """Record an answered party."""
        self._add(RecordedCallEvent("answered", event))

    async def ended(self, event: TelephonySessionEvent, reason: str) -> None:
        """Record an ended party and its reason."""
        self._add(RecordedCallEvent("ended", event, reason))
        self.end_reasons[event.telephony_session_id] = reason

    def _add(self, record: RecordedCallEvent) -> None:
        self.events.append(record)
        self.states[record.event.telephony_session_id] = record.kind


def session_end_reason(rc_reason: str) -> str:
    """Our session end reason for a RingCentral end reason: ``transferred`` when the call
    left by a transfer or redirect, else ``caller_hangup`` (the telephony leg is gone)."""
    return "transferred" if rc_reason in _TRANSFER_REASONS else "caller_hangup"


@dataclass
class WebhookStats:
    """Counters of the notifications webhook (for metrics and logs).

    Attributes:
        handshakes: subscription handshakes answered.
        accepted: notifications taken for processing.
        duplicates: notifications dropped as a repeated ``uuid``.
        late: notifications dropped as older than one already applied.
        unauthorized: requests refused for the verification token (401).
        malformed: requests refused as malformed (400).
        ignored: notifications of event types we do not act on.
        applied: telephony events applied.
        sink_errors: sink calls that raised.
        sessions_ended: live sessions ended by a Disconnected/Gone party.
        by_status: applied events per party status code.
    """

    handshakes: int = 0
    accepted: int = 0
    duplicates: int = 0
    late: int = 0
    unauthorized: int = 0
    malformed: int = 0
    ignored: int = 0
    applied: int = 0
    sink_errors: int = 0
    sessions_ended: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class RingCentralWebhook:
    """The notifications endpoint and its background worker.

    Args:
        verification_token: the ``Verification-Token`` every notification must carry
            (``RC_WEBHOOK_VERIFICATION_TOKEN``). ``None`` refuses every notification with
            401 (fail closed: these events end live calls); the handshake is still answered.
        sink: where call events go.
        manager: live sessions; a Disconnected/Gone party ends the matching one.
        dedupe_ttl_s: how long a notification ``uuid`` is remembered.
        dedupe_max: the most uuids remembered.
        reorder_window_s: how long an event waits for lower sequences of its session.
        max_queued: notifications accepted but not yet applied; beyond it 503.
        max_legs: telephony sessions whose last state is kept for `leg`.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        verification_token: str | None,
        sink: CallEventSink,
        manager: CallSessionManager | None = None,
        dedupe_ttl_s: float = 3600.0,
        dedupe_max: int = 100_000,
        reorder_window_s: float = 0.25,
        max_queued: int = 10_000,
        max_legs: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = verification_token or None
        self._sink = sink
        self._manager = manager
        self._seen = SeenSet(ttl_s=dedupe_ttl_s, max_items=dedupe_max, clock=clock)
        self._buffer: ReorderBuffer[TelephonySessionEvent] = ReorderBuffer(
            window_s=reorder_window_s, clock=clock
        )
        self._clock = clock
        self._max_queued = max_queued
        self._max_legs = max_legs
        self._ready: deque[TelephonySessionEvent] = deque()
        self._legs: OrderedDict[str, TelephonyLeg] = OrderedDict()
        self._calls: dict[str, str] = {}  # telephonySessionId -> our call id, when bound
        self._sessions_of: dict[str, str] = {}  # our call id -> telephonySessionId
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._enders: set[asyncio.Task[None]] = set()
        self.stats = WebhookStats()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the worker (idempotent)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="ringcentral-webhook"
            )

    async def close(self) -> None:
        """Apply what is already ready, then stop the worker and wait for session ends."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for event in [*self._ready, *self._buffer.flush()]:
            await self._apply(event)
        self._ready.clear()
        if self._enders:
            await asyncio.gather(*self._enders, return_exceptions=True)

    async def join(self) -> None:
        """Wait until every accepted notification has been applied (held ones included)."""
        await self._idle.wait()
        if self._enders:
            await asyncio.gather(*list(self._enders), return_exceptions=True)

    # ------------------------------------------------------------------ lookups

    def bind_call(self, telephony_session_id: str, call_id: str) -> None:
        """Tell the webhook which live call carries this telephony session, when the media
        gateway's call id is not the telephonySessionId itself."""
        self._calls[telephony_session_id] = call_id
        self._sessions_of[call_id] = telephony_session_id
        while len(self._calls) > self._max_legs:
            oldest = next(iter(self._calls))
            self._sessions_of.pop(self._calls.pop(oldest), None)

    def call_id_for(self, telephony_session_id: str) -> str:
        """Our call id for a telephony session: the bound one, else the session id itself
        (a gateway that uses the telephonySessionId as its call id needs no binding)."""
        return self._calls.get(telephony_session_id, telephony_session_id)

    def leg(self, telephony_session_id: str) -> TelephonyLeg | None:
        """The last known party state of a telephony session (for Call Control)."""
        return self._legs.get(telephony_session_id)

    def leg_for_call(self, call_id: str) -> TelephonyLeg | None:
        """The telephony leg of one of our calls (bound, or same id), if known."""
        tsid = self._sessions_of.get(call_id)
        if tsid is not None:
            return self._legs.get(tsid)
        return self._legs.get(call_id)

    # ------------------------------------------------------------------ HTTP

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one POST from RingCentral."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = await read_body(request, MAX_BODY_BYTES)
        if raw is None:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        validation = request.headers.get("Validation-Token")
        if validation is not None and _is_handshake(raw):
            return self._handshake(validation)
        # The current "Receiving webhooks" page calls the notification header
        # Validation-Token while the API schema says Verification-Token
        # (docs/RINGCENTRAL.md §1.3): accept either, preferring the documented one.
        given = request.headers.get("Verification-Token", validation)
        if self._token is None or not secret_matches(given, self._token):
            self.stats.unauthorized += 1
            log.warning("ringcentral notification refused: wrong or missing Verification-Token")
            return json_error(401, "missing or wrong Verification-Token header")
        try:
            note = parse_notification(raw)
        except NotificationError as exc:
            self.stats.malformed += 1
            log.warning("ringcentral notification refused: %s", exc.message)
            return json_error(400, exc.message, field=exc.field or None)
        if isinstance(note, OtherNotification):
            self.stats.ignored += 1
            log.info("ringcentral notification ignored: event %s", note.event)
            return web.Response(status=200)
        if len(self._ready) + self._buffer.held >= self._max_queued:
            log.warning("ringcentral notification refused: %d waiting", self._max_queued)
            return json_error(503, "too many notifications waiting; retry later")
        if not self._seen.add(note.uuid):
            self.stats.duplicates += 1
            log.info("duplicate ringcentral notification %s ignored", note.uuid)
            return web.Response(status=200)
        self._accept(note)
        return web.Response(status=200)

    def _handshake(self, token: str) -> web.Response:
        if not token or len(token) > MAX_VALIDATION_TOKEN:
            return json_error(400, f"Validation-Token must be 1-{MAX_VALIDATION_TOKEN} characters")
        self.stats.handshakes += 1
        log.info("ringcentral subscription handshake answered")
        # Exactly: 200, the token echoed, a JSON content type, an empty body.
        return web.Response(
            status=200, headers={"Validation-Token": token, "Content-Type": "application/json"}
        )

    def _accept(self, event: TelephonySessionEvent) -> None:
        self.stats.accepted += 1
        result = self._buffer.push(event.telephony_session_id, event.sequence, event)
        if result.late:
            self.stats.late += 1
            log.warning(
                "late ringcentral notification dropped: session %s sequence %d (%s)",
                event.telephony_session_id,
                event.sequence,
                event.status_code,
            )
            return
        self._ready.extend(result.ready)
        self._idle.clear()
        self._wake.set()
        if self._worker is None or self._worker.done():
            # Started by the app's on_startup normally; this covers a handler used alone.
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="ringcentral-webhook"
            )

    # ------------------------------------------------------------------ worker

    async def _run(self) -> None:
        while True:
            deadline = self._buffer.next_deadline()
            if not self._ready and deadline is not None:
                # Timers follow the injected clock: wait for the gap it reports.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), max(0.0, deadline - self._clock())
                    )
            elif not self._ready:
                await self._wake.wait()
            self._wake.clear()
            self._ready.extend(self._buffer.due())
            while self._ready:
                await self._apply(self._ready.popleft())
            if self._buffer.held == 0:
                self._idle.set()

    async def _apply(self, event: TelephonySessionEvent) -> None:
        party = event.party
        if party is None:
            return
        self._join_sip_call(event.telephony_session_id, party.sip_call_id)
        token = call_id_var.set(self.call_id_for(event.telephony_session_id))
        try:
            self.stats.applied += 1
            code = party.status.code
            self.stats.by_status[code] = self.stats.by_status.get(code, 0) + 1
            self._remember(event)
            try:
                if code in RINGING_CODES:
                    log.info(
                        "ringcentral: %s call ringing from %s to %s",
                        party.direction or "?",
                        mask_phone(party.from_number),
                        mask_phone(party.to_number),
                    )
                    await self._sink.ringing(event)
                elif code == "Answered":
                    log.info("ringcentral: call answered")
                    await self._sink.answered(event)
                elif code in ENDED_CODES:
                    reason = party.status.reason or code
                    log.info("ringcentral: call ended (%s)", reason)
                    await self._sink.ended(event, reason)
                else:
                    log.debug("ringcentral: status %s not acted on", code)
            except Exception:
                self.stats.sink_errors += 1
                log.exception("call event sink failed on %s", code)
            if code in ENDED_CODES:
                self._end_live_session(event, party.status.reason or code)
        finally:
            call_id_var.reset(token)

    def _join_sip_call(self, telephony_session_id: str, sip_call_id: str) -> None:
        """A SIP leg's call is keyed by its SIP Call-ID; RingCentral names it in
        ``sipData.callId``. Once a live session has that id, the telephony session's
        events and Call Control requests go to it."""
        if (not sip_call_id or telephony_session_id in self._calls
                or self._manager is None or self._manager.get(sip_call_id) is None):
            return
        log.info("ringcentral: telephony session joined to SIP call %s", sip_call_id)
        self.bind_call(telephony_session_id, sip_call_id)

    def _remember(self, event: TelephonySessionEvent) -> None:
        party = event.party
        assert party is not None
        self._legs[event.telephony_session_id] = TelephonyLeg(
            telephony_session_id=event.telephony_session_id,
            party_id=party.party_id,
            status_code=party.status.code,
            direction=party.direction,
            from_number=party.from_number,
            to_number=party.to_number,
            sequence=event.sequence,
            reason=party.status.reason,
        )
        self._legs.move_to_end(event.telephony_session_id)
        while len(self._legs) > self._max_legs:
            self._legs.popitem(last=False)

    def _end_live_session(self, event: TelephonySessionEvent, rc_reason: str) -> None:
        if self._manager is None:
            return
        call_id = self.call_id_for(event.telephony_session_id)
        session = self._manager.get(call_id)
        if session is None or session.is_ended:
            return
        reason = session_end_reason(rc_reason)
        log.info("ending live session: telephony leg %s (%s)", rc_reason, reason)
        self.stats.sessions_ended += 1
        # A session's end closes sockets and stops engines: not the worker's time to spend.
        task = asyncio.get_running_loop().create_task(
            session.end(reason), name=f"rc-end-{call_id}"
        )
        self._enders.add(task)
        task.add_done_callback(self._enders.discard)


def add_ringcentral_routes(app: web.Application, webhook: RingCentralWebhook) -> None:
    """Register ``POST /api/ringcentral/webhook`` and tie the worker to the app's life."""

    async def on_startup(_: web.Application) -> None:
        await webhook.start()

    async def on_cleanup(_: web.Application) -> None:
        await webhook.close()

    app.router.add_post(WEBHOOK_PATH, webhook.handle)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)


def _is_handshake(raw: bytes) -> bool:
    """A Validation-Token request whose body is not a notification is the handshake.

    RingCentral's handshake body is empty; checking for a notification (a ``uuid``)
    rather than for emptiness keeps a notification that carries the token under the
    other header name (§1.3 inconsistency) from being mistaken for a handshake.
    """
    stripped = raw.strip()
    return not stripped or b'"uuid"' not in stripped
