"""`TurnAssembler`: the caller's final transcripts joined into turns (pure, no I/O).

A recogniser delivers a turn in pieces: several finals, then an end-of-turn signal
(``speech_final`` on a final, or a separate utterance-end event). A turn whose answer
was dropped before any of it was heard (the caller went on talking) is not lost: its
text is kept as *unanswered* and leads the next turn, until an answer is heard.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AssembledTurn", "TurnAssembler"]


@dataclass(frozen=True, slots=True)
class AssembledTurn:
    """One finished caller turn.

    Attributes:
        text: the turn's words, an unanswered earlier turn first.
        confidence: the lowest confidence of its pieces (1.0 when none said).
    """

    text: str
    confidence: float


class TurnAssembler:
    """Collects final transcripts until the turn ends."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._confidence: list[float] = []
        self._unanswered = ""

    @property
    def in_progress(self) -> bool:
        """Some of a turn has been heard and it has not ended yet."""
        return bool(self._parts)

    def add(self, text: str, confidence: float) -> None:
        """One final transcript (blank ones are ignored)."""
        text = text.strip()
        if text:
            self._parts.append(text)
            self._confidence.append(confidence)

    def end(self) -> AssembledTurn | None:
        """The turn is over: its text (with any unanswered turn before it), or None."""
        text = " ".join([self._unanswered, *self._parts]).strip()
        confidence = min(self._confidence, default=1.0)
        self.discard()
        if not text:
            return None
        self._unanswered = text
        return AssembledTurn(text, confidence)

    def answered(self) -> None:
        """The caller heard an answer: what they said so far needs no repeating."""
        self._unanswered = ""

    def discard(self) -> None:
        """Forget the pieces of the turn under way (its audio went to a failed recogniser)."""
        self._parts.clear()
        self._confidence.clear()
