"""Text clean-up shared by the NLP modules: one form for matching words, one for entities.

Transcripts arrive in every shape ("What's the time?", "what s the time", "7 p.m.",
"seven PM"), so every matcher works on a normalised copy instead of trying to cope
with punctuation itself.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["normalize", "prepare"]

_APOSTROPHES: Final = re.compile(r"['\u2019\u2018`]")
_NON_WORD: Final = re.compile(r"[^a-z0-9]+")
# Meridiem spellings a recogniser or a person types: "p.m.", "p. m.", "P.M", "pm".
_MERIDIEM: Final = re.compile(r"\b([ap])\s?\.\s?m\b\.?")
# Keep what entities need ($ ₹ € £ + : . , %) and turn everything else into spaces.
_ENTITY_JUNK: Final = re.compile(r"[^a-z0-9$\u20b9\u20ac\u00a3+:.,%]+")
# Separators only mean something between digits ("1.5", "50,000", "7:30").
_LONE_SEPARATOR: Final = re.compile(r"(?<!\d)[.,:]|[.,:](?!\d)")
_LONE_PLUS: Final = re.compile(r"\+(?!\d)")
_SPACES: Final = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lowercase words and digits separated by single spaces, for intent patterns.

    Apostrophes vanish (``"that's"`` → ``"thats"``) and every other non-alphanumeric
    character becomes a space (``"uh-huh!"`` → ``"uh huh"``).

    Args:
        text: a transcript.

    Returns:
        The normalised text (possibly empty).
    """
    text = _APOSTROPHES.sub("", text.lower())
    return " ".join(_NON_WORD.split(text)).strip()


def prepare(text: str) -> str:
    """Lowercase text for entity extraction: keeps currency signs and numeric separators.

    ``"It's $1,500 at 7:30 p.m., OK?"`` → ``"its $1,500 at 7:30 pm ok"``.

    Args:
        text: a transcript.

    Returns:
        The prepared text (possibly empty).
    """
    text = _APOSTROPHES.sub("", text.lower())
    text = _MERIDIEM.sub(r"\1m", text)
    text = _ENTITY_JUNK.sub(" ", text)
    text = _LONE_SEPARATOR.sub(" ", text)
    text = _LONE_PLUS.sub(" ", text)
    # "$ 500" and "₹ 80" → the sign sticks to its amount.
    text = re.sub(r"([$\u20b9\u20ac\u00a3])\s+(?=\d)", r"\1", text)
    return _SPACES.sub(" ", text).strip()
