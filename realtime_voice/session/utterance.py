"""`Utterance`: one thing the bot says (a greeting, one answer), tracked for barge-in."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Utterance"]


@dataclass
class Utterance:
    """One thing the bot says, sentence by sentence, with the frames each one took.

    Attributes:
        mark: the mark placed after its last frame (echoed once it has all played).
        start_frame: the pacer's frame index (sent + queued) where it begins.
        sentences: (text, frames) per line spoken so far.
        audio_started: its first frame was queued.
        recorded: in the call record already (played out or cut by barge-in).
        first_item_at: when the responder produced its first line.
        tts_wait_s: synthesis request → first audio, first line.
    """

    mark: str
    start_frame: int
    sentences: list[tuple[str, int]] = field(default_factory=list)
    audio_started: bool = False
    recorded: bool = False
    first_item_at: float | None = None
    tts_wait_s: float | None = None

    def heard_text(self, frames_played: int) -> str:
        """The words the caller heard if ``frames_played`` frames of this utterance played.

        A sentence cut part-way counts the share of its words its played frames cover.
        """
        heard: list[str] = []
        remaining = frames_played
        for text, frames in self.sentences:
            if remaining >= frames:
                heard.append(text)
                remaining -= frames
                continue
            if remaining > 0 and frames > 0:
                words = text.split()
                heard.append(" ".join(words[: len(words) * remaining // frames]))
            break
        return " ".join(part for part in heard if part)

    @property
    def text(self) -> str:
        """Everything said, in full."""
        return " ".join(text for text, _ in self.sentences)
