"""The Prometheus metrics of one server process, served at ``GET /metrics``.

Built on ``prometheus_client`` (histograms, label handling and the exposition format are
what it is for) with one registry per `VoiceMetrics`, so several servers in one process
(tests) never share counters.

Two kinds of figures:

- events counted as they happen (turn latencies, stage times, barge-ins, transfers,
  errors, webhook requests, calls finished by outcome, usage and cost), through the
  `SessionObserver` methods and `webhook_request`;
- per-frame counters (frames in and out, dropped and late frames, recogniser
  reconnects) that would cost a lock per 20 ms frame if counted that way: they are read
  at scrape time as the totals of finished calls plus the live sessions' own counters.

Catalogue (all names prefixed ``voice_``): see `METRIC_NAMES` and the README.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from realtime_voice.session.observer import Component, FinishedCall, Stage

if TYPE_CHECKING:
    from realtime_voice.session.manager import CallSessionManager
    from realtime_voice.storage.pipeline import RecorderCounters

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "VoiceMetrics"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The exposition format's media type."""

# Turn latency on a phone: a good answer starts within ~1 s, 3 s feels broken.
_TURN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)
# The server's own share should be a few ms; the capacity benchmark reads p99 from these.
_SERVER_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0,
)
_STAGE_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
_COST_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)

METRIC_NAMES = (
    "voice_active_calls",
    "voice_calls_total",
    "voice_calls_finished_total",
    "voice_turn_latency_seconds",
    "voice_server_added_latency_seconds",
    "voice_stage_ttfb_seconds",
    "voice_barge_ins_total",
    "voice_transfers_total",
    "voice_frames_total",
    "voice_dropped_frames_total",
    "voice_late_frames_total",
    "voice_stt_reconnects_total",
    "voice_webhook_requests_total",
    "voice_media_refused_total",
    "voice_recorder_spool_depth",
    "voice_recorder_records_total",
    "voice_errors_total",
    "voice_usage_total",
    "voice_call_cost_dollars",
)
"""Every metric family this module exposes."""


class VoiceMetrics:
    """The process's metrics; also the `SessionObserver` every call reports to.

    Args:
        manager: the live calls (read at scrape time).
        spool_depth: records waiting in the recorder's spool for the database (``None``
            when nothing is recorded).
        recorder_counters: the recorder's records by fate (written, spooled, replayed,
            failed, dropped).
    """

    def __init__(
        self,
        manager: CallSessionManager,
        *,
        spool_depth: Callable[[], int] | None = None,
        recorder_counters: Callable[[], RecorderCounters] | None = None,
        sip: Callable[[], tuple[bool, Mapping[str, int]]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._manager = manager
        self._spool_depth = spool_depth
        self._recorder_counters = recorder_counters
        self._sip = sip
        # Totals of finished calls; live calls are added at scrape time.
        self._finished = _FrameTotals()
        r = self.registry
        self._outcomes = Counter(
            "voice_calls_finished", "Calls finished, by recorded outcome.", ["outcome"],
            registry=r,
        )
        self._turn = Histogram(
            "voice_turn_latency_seconds",
            "End of the caller's turn (as the server saw it) to the first bot audio frame sent.",
            buckets=_TURN_BUCKETS, registry=r,
        )
        self._server_added = Histogram(
            "voice_server_added_latency_seconds",
            "Turn latency minus the waits on the chat model's first sentence and the "
            "voice's first audio: what the server itself added.",
            buckets=_SERVER_BUCKETS, registry=r,
        )
        self._stage = Histogram(
            "voice_stage_ttfb_seconds",
            "Time to first result per provider stage: stt_final (last caller speech to the "
            "end of turn), llm_first_token, tts_first_audio.",
            ["stage"], buckets=_STAGE_BUCKETS, registry=r,
        )
        self._barge_ins = Counter(
            "voice_barge_ins", "Times a caller interrupted the bot.", registry=r
        )
        self._transfers = Counter(
            "voice_transfers", "Calls handed to a human.", registry=r
        )
        self._errors = Counter(
            "voice_errors", "Errors by component (the call may have gone on).", ["component"],
            registry=r,
        )
        self._media_refused = Counter(
            "voice_media_refused",
            "Media connections refused before a session started, by reason.",
            ["reason"], registry=r,
        )
        self._webhooks = Counter(
            "voice_webhook_requests", "HTTP requests by route and status.",
            ["route", "method", "status"], registry=r,
        )
        self._usage = Counter(
            "voice_usage", "Billable usage of finished calls, by kind.", ["kind"], registry=r
        )
        self._cost = Histogram(
            "voice_call_cost_dollars",
            "Estimated provider cost per finished call (VOICE_PRICE_* settings).",
            buckets=_COST_BUCKETS, registry=r,
        )
        for stage in ("stt_final", "llm_first_token", "tts_first_audio"):
            self._stage.labels(stage=stage)
        for component in ("stt", "tts", "llm", "responder", "protocol", "platform"):
            self._errors.labels(component=component)
        for kind in _USAGE_KINDS:
            self._usage.labels(kind=kind)
        r.register(_LiveCollector(self))

    # ------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """The current metrics in the Prometheus text format (version 0.0.4)."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ SessionObserver

    def turn_answered(self, latency_s: float, server_added_s: float | None) -> None:
        """Observe one answered turn."""
        self._turn.observe(latency_s)
        if server_added_s is not None:
            self._server_added.observe(max(0.0, server_added_s))

    def stage_ttfb(self, stage: Stage, seconds: float) -> None:
        """Observe one provider stage's time to first result."""
        self._stage.labels(stage=stage).observe(seconds)

    def barge_in(self) -> None:
        """Count a barge-in."""
        self._barge_ins.inc()

    def transfer(self) -> None:
        """Count a transfer."""
        self._transfers.inc()

    def error(self, component: Component) -> None:
        """Count an error of ``component``."""
        self._errors.labels(component=component).inc()

    def call_finished(self, call: FinishedCall) -> None:
        """Move a call's totals into the finished counters."""
        self._outcomes.labels(outcome=call.outcome).inc()
        self._finished.add(
            call.frames_in, call.frames_out, call.dropped_frames, call.late_frames,
            call.stt_reconnects,
        )
        usage = call.usage
        self._usage.labels(kind="stt_audio_seconds").inc(usage.stt_audio_seconds)
        self._usage.labels(kind="tts_characters").inc(usage.tts_characters)
        self._usage.labels(kind="llm_prompt_tokens").inc(usage.llm_prompt_tokens)
        self._usage.labels(kind="llm_completion_tokens").inc(usage.llm_completion_tokens)
        self._cost.observe(call.cost_usd)

    # ------------------------------------------------------------------ connections

    def media_refused(self, reason: str) -> None:
        """Count a media connection refused before its session (rate limit, token...)."""
        self._media_refused.labels(reason=reason).inc()

    # ------------------------------------------------------------------ HTTP

    def webhook_request(self, route: str, method: str, status: int) -> None:
        """Count one HTTP request (``route`` is the route template, never the raw path)."""
        self._webhooks.labels(route=route, method=method, status=str(status)).inc()


_USAGE_KINDS = ("stt_audio_seconds", "tts_characters", "llm_prompt_tokens", "llm_completion_tokens")


class _FrameTotals:
    """Per-frame counters of finished calls."""

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.late = 0
        self.reconnects = 0

    def add(
        self, frames_in: int, frames_out: int, dropped: int, late: int, reconnects: int
    ) -> None:
        self.frames_in += frames_in
        self.frames_out += frames_out
        self.dropped += dropped
        self.late += late
        self.reconnects += reconnects


class _LiveCollector:
    """Scrape-time figures: live gauges and the frame counters (finished + live calls)."""

    def __init__(self, metrics: VoiceMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        manager = m._manager
        totals = _FrameTotals()
        f = m._finished
        totals.add(f.frames_in, f.frames_out, f.dropped, f.late, f.reconnects)
        for session in manager.sessions():
            if session.is_ended:
                continue  # already counted by call_finished
            live = session.live_counters()
            totals.add(
                live.frames_in, live.frames_out, live.dropped_frames, live.late_frames,
                live.stt_reconnects,
            )
        yield _gauge("voice_active_calls", "Live media sessions.", manager.active_calls)
        yield _counter("voice_calls", "Calls admitted since start.", manager.total_calls)
        frames = CounterMetricFamily(
            "voice_frames", "20 ms audio frames, by direction.", labels=["direction"]
        )
        frames.add_metric(["in"], totals.frames_in)
        frames.add_metric(["out"], totals.frames_out)
        yield frames
        yield _counter(
            "voice_dropped_frames",
            "Inbound frames dropped because the recogniser fell behind.",
            totals.dropped,
        )
        yield _counter(
            "voice_late_frames",
            "Outbound frames sent more than one frame period after their due time.",
            totals.late,
        )
        yield _counter(
            "voice_stt_reconnects", "Recogniser connections re-opened mid-call.", totals.reconnects
        )
        if m._spool_depth is not None:
            yield _gauge(
                "voice_recorder_spool_depth",
                "Records waiting on disk for the database to come back.",
                _safe(m._spool_depth),
            )
        if m._recorder_counters is not None:
            records = CounterMetricFamily(
                "voice_recorder_records",
                "Call records by fate: written, spooled (database away), replayed from the "
                "spool, failed (refused, kept in rejected.jsonl), dropped (lost).",
                labels=["fate"],
            )
            try:
                counters = m._recorder_counters()
                for fate in ("written", "spooled", "replayed", "failed", "dropped"):
                    records.add_metric([fate], getattr(counters, fate))
            except Exception:
                log.exception("recorder counters could not be read")
            yield records
        if m._sip is not None:
            yield from _sip_metrics(m._sip)


def _sip_metrics(read: Callable[[], tuple[bool, Mapping[str, int]]]) -> Iterator[Metric]:
    """The SIP leg: registration and the RTP/SRTP counters of its calls."""
    try:
        registered, totals = read()
    except Exception:
        log.exception("SIP counters could not be read")
        return
    yield _gauge("voice_sip_registered",
                 "1 while the RingCentral device registration holds, else 0.", int(registered))
    packets = CounterMetricFamily("voice_rtp_packets", "RTP packets of SIP calls, by direction.",
                                  labels=["direction"])
    packets.add_metric(["sent"], totals.get("packets_sent", 0))
    packets.add_metric(["received"], totals.get("packets_received", 0))
    yield packets
    yield _counter("voice_rtp_lost_packets",
                   "Inbound RTP packets that never came (concealed).",
                   totals.get("packets_lost", 0))
    dropped = CounterMetricFamily(
        "voice_srtp_dropped",
        "Inbound SRTP packets dropped: failed authentication (tampered or wrong key), "
        "replayed, or malformed.", labels=["reason"])
    dropped.add_metric(["auth"], totals.get("srtp_auth_failures", 0))
    dropped.add_metric(["replay"], totals.get("srtp_replays", 0))
    dropped.add_metric(["malformed"], totals.get("srtp_malformed", 0))
    yield dropped
    yield _counter("voice_rtp_dtmf_digits", "RFC 4733 digits received on SIP calls.",
                   totals.get("dtmf_received", 0))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _safe(read: Callable[[], int]) -> int:
    # A scrape must never fail because one figure could not be read.
    try:
        return read()
    except Exception:
        log.exception("a metric could not be read")
        return 0

