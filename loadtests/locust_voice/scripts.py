"""What a simulated caller says, in order, and when.

A script is a list of `Step` values. Each step says one prerecorded utterance (see
`fixtures`), either after the bot finished its reply and a short human pause, or over the
bot (barge-in) a set time after its reply started playing. Before the first step the bot
greets the caller; "its reply" for the first step is the greeting. After the last step
the caller hangs up once the bot finished answering; if the bot ends the call first (a
transfer, a goodbye), the call ends there, normally.
"""

from __future__ import annotations

from dataclasses import dataclass

from locust_voice.fixtures import UTTERANCES

__all__ = ["SCRIPTS", "Step", "scripted_transcripts"]


@dataclass(frozen=True, slots=True)
class Step:
    """One caller utterance.

    Attributes:
        utterance: the name of the utterance (a key of `fixtures.UTTERANCES`).
        barge_in_after_s: talk over the bot, starting this long after its current reply
            started playing; None waits until the bot finished.
        pause_s: silence after the bot finished before speaking (ignored for a barge-in).
    """

    utterance: str
    barge_in_after_s: float | None = None
    pause_s: float = 0.8

    def __post_init__(self) -> None:
        if self.utterance not in UTTERANCES:
            raise ValueError(f"unknown utterance {self.utterance!r}")
        if self.pause_s < 0 or (self.barge_in_after_s or 0.0) < 0:
            raise ValueError("pause_s and barge_in_after_s must not be negative")


SCRIPTS: dict[str, tuple[Step, ...]] = {
    # A whole restaurant call, about 45 s: a question, a booking, a barge-in during the
    # bot's follow-up question, then a transfer to a manager.
    "restaurant": (
        Step("what_time_open"),
        Step("book_table"),
        Step("parking", barge_in_after_s=0.8),
        Step("manager"),
    ),
    # A short call, about 15 s: interrupt the greeting with a question, interrupt the
    # answer with another, listen to the reply, hang up. Two turns, two barge-ins.
    "short": (
        Step("what_time_open", barge_in_after_s=1.0),
        Step("parking", barge_in_after_s=1.0),
    ),
}
"""The scripts a caller can follow (``--call-script``)."""

_ENDS_CALL = frozenset({"manager"})
"""Utterances after which the default flow ends the call (a transfer)."""


def scripted_transcripts(script: tuple[Step, ...]) -> list[str]:
    """What the Deepgram simulator's scripted mode should "recognise" for ``script``.

    The script's own lines, in order, without those that end the call: the simulator
    hands its sentences out round robin and starts each stream at a different one, so a
    call-ending line could come first and cut every later step (a barge-in included)
    short. Without them every simulated call runs its whole script; the offline
    engines, which really recognise speech, still transfer after "a manager, please".
    """
    lines = [UTTERANCES[step.utterance] for step in script if step.utterance not in _ENDS_CALL]
    return lines or [UTTERANCES[step.utterance] for step in script]
