"""Back-channel fillers: "uh-huh", "mm-hmm", "yeah", "okay", "haan", "right".

A listener makes these noises to show they are following, not to take the turn. The
session uses `is_backchannel` so they neither interrupt the bot nor start a new turn
while it talks.
"""

from __future__ import annotations

import re
from typing import Final

from ai_pipeline.nlp.normalize import normalize

__all__ = ["is_backchannel"]

# fmt: off
_FILLERS: Final = (
    "uh huh", "uh hum", "uhhuh", "uh uh huh", "mm hmm", "mhm", "mmhmm", "mm hm", "m hm",
    "hmm", "hm", "mm", "mmm", "um", "umm", "uh", "er", "erm", "ah", "oh", "aha", "ahh", "ooh",
    "yeah", "yea", "ya", "yah", "yep", "yup", "okay", "ok", "okey", "alright", "all right",
    "right", "i see", "got it", "gotcha", "go on", "sure sure", "cool", "wow", "really",
    "haan", "han", "haa", "ha", "hanji", "haanji", "ji", "achha", "acha", "accha", "theek",
    "theek hai", "thik hai", "sahi", "oh okay", "oh ok", "i know",
)
# fmt: on
_BACKCHANNEL: Final = re.compile(
    r"^(?:(?:" + "|".join(sorted(_FILLERS, key=len, reverse=True)) + r")(?: |$))+$"
)
_MAX_WORDS: Final = 6


def is_backchannel(text: str) -> bool:
    """True when the utterance is only acknowledgement noises ("uh-huh", "yeah, okay").

    "Yeah" and "okay" are also answers to a question; the caller of this function
    decides when an acknowledgement can be ignored (while the bot is talking, or when
    the bot did not ask anything).

    Args:
        text: a transcript (any case and punctuation).

    Returns:
        Whether it is nothing but back-channel fillers. Empty text is not.
    """
    words = normalize(text)
    if not words or words.count(" ") >= _MAX_WORDS:
        return False
    return _BACKCHANNEL.match(words) is not None
