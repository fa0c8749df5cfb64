"""The end-of-call summary: the outcome, the metrics and the cost, recorded and reported once.

The outcome is what the flow decided (booked, escalated...) when it decided something;
otherwise how the call ended (``completed``, ``transferred``, ``failed``...). A failure or
a shutdown says more than a flow's mere default outcome.
"""

from __future__ import annotations

import logging

from ai_pipeline.flow_responder import outcome_of
from realtime_voice.audio.format import FRAME_MS
from realtime_voice.call_meter import Prices
from realtime_voice.session.observer import FinishedCall
from realtime_voice.session.services import CallServices
from realtime_voice.session.stats import LiveCounters
from realtime_voice.storage.journal import (
    default_outcome,
    metrics_from_stats,
    utc_from_timestamp,
)

__all__ = ["record_call_end"]

log = logging.getLogger(__name__)


def record_call_end(
    call: CallServices,
    *,
    state: str,
    reason: str,
    live: LiveCounters,
    started_at: float,
    ended_at: float,
    billed_stt_frames: int,
) -> str:
    """Write the call's final record and tell the observer its totals.

    Args:
        call: the call's bookkeeping (the flow's outcome lives in its context's state).
        state: the final state (``ended`` or ``failed``).
        reason: why the call ended.
        live: the frame counters at the end.
        started_at: wall-clock start (epoch seconds).
        ended_at: wall-clock end.
        billed_stt_frames: inbound frames a paid recogniser heard.

    Returns:
        The outcome recorded.
    """
    context, journal, stats, meter = call.context, call.journal, call.stats, call.meter
    observer = call.observer
    prices = Prices.from_settings(call.settings)
    flow_outcome = outcome_of(context)
    how_it_ended = default_outcome(state, reason)
    outcome = (
        flow_outcome.outcome
        if flow_outcome
        and flow_outcome.outcome
        and (flow_outcome.decided or how_it_ended in ("completed", "transferred"))
        else how_it_ended
    )
    usage = meter.usage
    usage.call_seconds = max(0.0, ended_at - started_at)
    usage.stt_audio_seconds = billed_stt_frames * FRAME_MS / 1000
    cost = usage.cost_breakdown(prices)["total"]
    journal.ended(
        state=state,
        end_reason=reason,
        outcome=outcome,
        escalated=flow_outcome.escalated if flow_outcome else None,
        metrics=metrics_from_stats(stats),
        ended_at=utc_from_timestamp(ended_at),
        usage=usage.as_record(prices),
        cost_usd=round(cost, 6),
    )
    if observer is not None:
        observer.call_finished(
            FinishedCall(
                outcome=outcome,
                frames_in=live.frames_in,
                frames_out=live.frames_out,
                dropped_frames=live.dropped_frames,
                late_frames=live.late_frames,
                stt_reconnects=live.stt_reconnects,
                usage=usage,
                cost_usd=cost,
            )
        )
    log.info(
        "call ended: state=%s frames_in=%d frames_out=%d turns=%d barge_ins=%d",
        state,
        stats.frames_in,
        stats.frames_out,
        stats.turns,
        stats.barge_ins,
    )
    return outcome
