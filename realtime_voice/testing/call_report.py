"""What one simulated call observed: the report, its transcript, and bot utterances.

Times are seconds from the moment the media WebSocket opened. Bot times are PLAY
times (when the gateway played the audio, see `GatewayPlayback`), not receive times,
because that is what the caller heard; latencies are measured on receive times, which
is what the server controls.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from realtime_voice.testing.playback import PlaybackEvent, PlayedAudio, ReachedMark

__all__ = [
    "BotUtterance",
    "CallReport",
    "CallerLineReport",
    "EndReason",
    "MarkRecord",
    "TimelineEvent",
    "UtteranceTracker",
    "format_event",
]

EndReason = Literal[
    "caller_hangup", "server_hangup", "transfer", "server_closed", "max_duration", "not_connected"
]
"""Why the call ended: the caller sent ``stop`` after its last line; the bot hung up;
the bot transferred; the server closed the socket on its own; ``max_call_s`` ran out;
or the media connection never opened."""


class TimelineEvent(NamedTuple):
    """One line of the call's timeline.

    Attributes:
        t: seconds from the media connection opening.
        who: ``BOT``, ``CALLER`` or ``CALL`` (control events: marks, clear, transfer...).
        what: what happened, in words.
    """

    t: float
    who: str
    what: str


def format_event(event: TimelineEvent) -> str:
    """One transcript line: ``[  3.42] BOT    Thank you for calling...``."""
    return f"[{event.t:7.2f}] {event.who:<6} {event.what}"


@dataclass(slots=True)
class CallerLineReport:
    """What became of one scripted caller line.

    Attributes:
        index: position in the script (0-based).
        kind: ``speech`` (text or audio) or ``dtmf``.
        label: the text, the digit, or a description of raw audio.
        barge_in: the line was meant to interrupt the bot.
        start: when its first audio frame (or the DTMF message) was sent; ``None`` if
            the call ended before it.
        end: when its last audio frame was sent (== ``start`` for DTMF).
        turn_latency_s: ``end`` to the first bot audio received after it (for a
            barge-in, after the ``clear``); ``None`` when the bot did not answer.
        barge_in_latency_s: for a barge-in line, ``start`` to the ``clear`` received;
            ``None`` when no ``clear`` came (or the bot had already finished).
    """

    index: int
    kind: Literal["speech", "dtmf"]
    label: str
    barge_in: bool = False
    start: float | None = None
    end: float | None = None
    turn_latency_s: float | None = None
    barge_in_latency_s: float | None = None


@dataclass(slots=True)
class BotUtterance:
    """One stretch of bot speech as the caller heard it.

    Attributes:
        start: when it started playing.
        end: when it stopped playing (cut short at a ``clear``).
        audio: the mu-law bytes that played.
        interrupted: a ``clear`` cut it off.
        mark: the mark that ended it, if one did.
        text: what it said, when transcribed (``None`` otherwise).
    """

    start: float
    end: float
    audio: bytes = field(repr=False)
    interrupted: bool = False
    mark: str | None = None
    text: str | None = None

    @property
    def duration_s(self) -> float:
        """How long it played."""
        return self.end - self.start

    def describe(self) -> str:
        """The text (or a placeholder) with an ``[interrupted]`` flag when cut off."""
        said = self.text if self.text is not None else f"({self.duration_s:.1f} s of speech)"
        if not said.strip():
            said = f"({self.duration_s:.1f} s, nothing recognised)"
        return f"{said} [interrupted]" if self.interrupted else said


@dataclass(slots=True)
class MarkRecord:
    """One mark the server sent.

    Attributes:
        name: its name.
        received_at: when it arrived.
        echoed_at: when we echoed it (playback reached it, or it was cleared).
        cleared: it was echoed because of a ``clear``, not because its audio played.
    """

    name: str
    received_at: float
    echoed_at: float | None = None
    cleared: bool = False


class UtteranceTracker:
    """Split played bot audio into utterances at marks, clears and silent gaps.

    Feed it the playback events in order, and `clear` when the server clears. A mark
    ends the utterance it follows; so does a ``clear`` (flagged interrupted) and a
    silent gap longer than ``gap_s`` (for servers that send no marks).

    Args:
        gap_s: silence between two frames that splits an utterance.
    """

    def __init__(self, gap_s: float = 0.6) -> None:
        """Start with no utterances."""
        self._gap_s = gap_s
        self._current: BotUtterance | None = None
        self._chunks: list[bytes] = []
        self.finished: list[BotUtterance] = []
        """Utterances closed so far, oldest first."""

    def feed(self, events: Iterable[PlaybackEvent]) -> list[BotUtterance]:
        """Take playback events; return the utterances they closed."""
        closed: list[BotUtterance] = []
        for event in events:
            if isinstance(event, PlayedAudio):
                current = self._current
                if current is not None and event.start - current.end > self._gap_s:
                    closed.extend(self._close())
                    current = None
                if current is None:
                    self._current = BotUtterance(event.start, event.end, b"")
                else:
                    current.end = event.end
                self._chunks.append(event.audio)
            elif isinstance(event, ReachedMark):
                closed.extend(self._close(mark=event.name))
        return closed

    def clear(self) -> list[BotUtterance]:
        """The server cleared playback: the current utterance was cut off."""
        return self._close(interrupted=True)

    def flush(self) -> list[BotUtterance]:
        """The call ended: close whatever was playing."""
        return self._close()

    @property
    def speaking(self) -> bool:
        """An utterance is open (audio played since the last mark, clear or gap)."""
        return self._current is not None

    def _close(self, *, mark: str | None = None, interrupted: bool = False) -> list[BotUtterance]:
        current = self._current
        if current is None:
            return []
        current.audio = b"".join(self._chunks)
        current.mark = mark
        current.interrupted = interrupted
        self._current = None
        self._chunks = []
        self.finished.append(current)
        return [current]


def _seconds(values: Iterable[float | None]) -> str:
    shown = [f"{v:.2f} s" if v is not None else "none" for v in values]
    return ", ".join(shown) if shown else "none"


@dataclass(slots=True)
class CallReport:
    """Everything one simulated call observed.

    Attributes:
        call_id: the call id sent to the webhook (the CallSid for Twilio).
        protocol: ``ringcentral`` or ``twilio``.
        media_url: the WebSocket URL the call connected to.
        caller_lines: one entry per scripted line, in order.
        bot_utterances: what the bot said, as played, in order.
        marks_received: every mark the server sent.
        clears: times a ``clear`` arrived.
        transfer: the transfer target, if the bot transferred.
        hangup_reason: the bot's hang-up reason, if it hung up.
        errors: every ``error`` frame, as received.
        unexpected: server messages the protocol does not allow, with the problem.
        notes: the caller's own problems that did not stop the call (e.g. no
            recogniser installed, so the bot's speech was not transcribed).
        close_code: the WebSocket close code (``None`` if never connected).
        close_reason: the close reason text.
        ended_by: why the call ended.
        duration_s: from connection to close.
        record_path: the stereo WAV written, if any.
        call_events: control events as they happened (marks, clear, transfer...).
    """

    call_id: str
    protocol: str
    media_url: str = ""
    caller_lines: list[CallerLineReport] = field(default_factory=list)
    bot_utterances: list[BotUtterance] = field(default_factory=list)
    marks_received: list[MarkRecord] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    transfer: Mapping[str, str] | None = None
    hangup_reason: str | None = None
    errors: list[Mapping[str, Any]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    ended_by: EndReason = "not_connected"
    duration_s: float = 0.0
    record_path: str | None = None
    call_events: list[TimelineEvent] = field(default_factory=list)

    @property
    def turn_latencies_s(self) -> list[float | None]:
        """Per caller line: end of its audio to the first bot audio received after it."""
        return [line.turn_latency_s for line in self.caller_lines]

    @property
    def barge_in_latencies_s(self) -> list[float | None]:
        """Per barge-in line: start of its audio to the ``clear`` received."""
        return [line.barge_in_latency_s for line in self.caller_lines if line.barge_in]

    @property
    def bot_text(self) -> str:
        """Everything the bot was heard saying, joined (empty when not transcribed)."""
        return " ".join(u.text for u in self.bot_utterances if u.text)

    @property
    def events(self) -> list[TimelineEvent]:
        """The whole timeline, oldest first: caller lines, bot utterances and control."""
        timeline = list(self.call_events)
        for line in self.caller_lines:
            if line.start is not None:
                what = f"DTMF {line.label}" if line.kind == "dtmf" else line.label
                timeline.append(TimelineEvent(line.start, "CALLER", what))
        for utterance in self.bot_utterances:
            timeline.append(TimelineEvent(utterance.start, "BOT", utterance.describe()))
        # Stable sort on time alone keeps same-time events in the order they happened.
        timeline.sort(key=lambda e: e.t)
        return timeline

    def format_transcript(self) -> str:
        """The timed two-sided transcript, one event per line."""
        return "\n".join(format_event(e) for e in self.events)

    def summary(self) -> str:
        """A few lines: outcome, latencies, transfer/hang-up, close code, errors."""
        lines = [
            f"call {self.call_id} ({self.protocol}): {self.duration_s:.1f} s, "
            f"ended by {self.ended_by.replace('_', ' ')}, "
            f"close code {self.close_code}"
            + (f" ({self.close_reason})" if self.close_reason else "")
        ]
        latencies = self.turn_latencies_s
        measured = [v for v in latencies if v is not None]
        if latencies:
            line = f"turn latency per line: {_seconds(latencies)}"
            if measured:
                line += f" (median {statistics.median(measured):.2f} s, max {max(measured):.2f} s)"
            lines.append(line)
        if any(line.barge_in for line in self.caller_lines):
            lines.append(f"barge-in to clear: {_seconds(self.barge_in_latencies_s)}")
        if self.transfer is not None:
            lines.append(f"transfer: {json.dumps(dict(self.transfer))}")
        if self.hangup_reason is not None:
            lines.append(f"bot hung up: {self.hangup_reason}")
        lines.append(
            f"bot utterances: {len(self.bot_utterances)}"
            f" ({sum(u.interrupted for u in self.bot_utterances)} interrupted),"
            f" marks: {len(self.marks_received)}, clears: {len(self.clears)}"
        )
        if self.errors:
            lines.append(f"error frames: {len(self.errors)}")
            lines.extend(f"  {json.dumps(dict(e))}" for e in self.errors)
        if self.unexpected:
            lines.append(f"unexpected server messages: {len(self.unexpected)}")
            lines.extend(f"  {u}" for u in self.unexpected)
        lines.extend(f"note: {n}" for n in self.notes)
        if self.record_path:
            lines.append(f"recording: {self.record_path} (left: caller, right: bot)")
        return "\n".join(lines)
