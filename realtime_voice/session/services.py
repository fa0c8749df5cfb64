"""`CallServices`: what every part of one call shares — its record, counters and clock.

The session makes one per call and hands it to the parts it delegates to (the speaker,
the conversation, the end-of-call summary), so each takes one argument for the call's
bookkeeping instead of eight, and errors are counted the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ai_pipeline.responder import ConversationContext
from realtime_voice.call_meter import CallMeter
from realtime_voice.config import Settings
from realtime_voice.session.observer import Component, SessionObserver, Stage
from realtime_voice.session.stats import CallStats
from realtime_voice.storage.journal import CallJournal

__all__ = ["CallServices"]


@dataclass(eq=False)
class CallServices:
    """One call's shared bookkeeping.

    Attributes:
        settings: server settings.
        context: the conversation (history, parameters, the flow's state).
        journal: the call's record.
        stats: the call's counters.
        meter: the call's usage of paid providers and their latencies.
        observer: the process's metrics, if any.
        clock: monotonic clock (the loop's).
    """

    settings: Settings
    context: ConversationContext
    journal: CallJournal
    stats: CallStats
    meter: CallMeter
    observer: SessionObserver | None
    clock: Callable[[], float]

    def count_error(self, component: Component) -> None:
        """An error in ``component``: counted in the call's stats and the metrics."""
        self.stats.errors += 1
        if self.observer is not None:
            self.observer.error(component)

    def stage(self, stage: Stage, seconds: float) -> None:
        """A provider stage's time to first result, for the metrics."""
        if self.observer is not None:
            self.observer.stage_ttfb(stage, seconds)
