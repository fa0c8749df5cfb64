"""Prometheus text exposition of the process's call counters.

A deliberately small set for now (live calls, outcomes, frames, barge-ins); the full
metric catalogue (histograms, per-stage latencies) is the operations issue's.
"""

from __future__ import annotations

from realtime_voice.session.manager import CallSessionManager

__all__ = ["render_metrics"]


def render_metrics(manager: CallSessionManager) -> str:
    """Render the current counters in the Prometheus text format (version 0.0.4)."""
    sessions = manager.sessions()
    lines = [
        "# HELP voice_active_calls Live media sessions.",
        "# TYPE voice_active_calls gauge",
        f"voice_active_calls {manager.active_calls}",
        "# HELP voice_calls_total Calls admitted since start.",
        "# TYPE voice_calls_total counter",
        f"voice_calls_total {manager.total_calls}",
        "# HELP voice_calls_finished_total Calls finished, by outcome.",
        "# TYPE voice_calls_finished_total counter",
        f'voice_calls_finished_total{{outcome="completed"}} {manager.completed_calls}',
        f'voice_calls_finished_total{{outcome="failed"}} {manager.failed_calls}',
        "# HELP voice_live_frames_in Inbound 20 ms frames of live calls.",
        "# TYPE voice_live_frames_in gauge",
        f"voice_live_frames_in {sum(s.stats.frames_in for s in sessions)}",
        "# HELP voice_live_barge_ins Barge-ins in live calls.",
        "# TYPE voice_live_barge_ins gauge",
        f"voice_live_barge_ins {sum(s.stats.barge_ins for s in sessions)}",
    ]
    return "\n".join(lines) + "\n"
