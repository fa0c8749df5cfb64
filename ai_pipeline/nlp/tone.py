"""Tone of an utterance: neutral, positive, negative or angry, from a weighted lexicon.

Phrases carry anger, negative or positive weight. A negator up to three words before
a term flips a positive one ("not happy") and cancels a negative one ("not bad"); an
intensifier ("very", "so", "really") multiplies it by 1.5. Shouting in the original
text (words in capitals, "!!") adds anger when something negative was said. Insults
and profanity also set ``abusive``, which flows may escalate on at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ai_pipeline.nlp.normalize import normalize

__all__ = ["Tone", "ToneResult", "detect_tone"]


class Tone(StrEnum):
    """The caller's tone in one utterance."""

    NEUTRAL = "neutral"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    ANGRY = "angry"


@dataclass(frozen=True, slots=True)
class ToneResult:
    """The tone and the evidence behind it.

    Attributes:
        tone: the verdict.
        valence: -1 (very negative) .. 1 (very positive).
        anger: accumulated anger evidence (1 or more is angry).
        abusive: insults or profanity.
    """

    tone: Tone
    valence: float
    anger: float
    abusive: bool


# (anger, negative, positive, abusive)
_Weights = tuple[float, float, float, bool]

# fmt: off
_LEXICON: Final[dict[str, _Weights]] = {
    # anger
    "ridiculous": (1.0, 1.0, 0, False), "unacceptable": (1.0, 1.0, 0, False),
    "furious": (1.0, 1.0, 0, False), "angry": (0.8, 1.0, 0, False),
    "pissed": (1.0, 1.0, 0, False), "pissed off": (1.0, 1.0, 0, False),
    "fed up": (1.0, 1.0, 0, False), "sick of": (1.0, 1.0, 0, False),
    "sick and tired": (1.0, 1.0, 0, False), "this is a joke": (1.0, 1.0, 0, False),
    "useless": (1.0, 1.0, 0, False), "pathetic": (1.0, 1.0, 0, False),
    "incompetent": (1.0, 1.0, 0, False), "worst": (0.8, 1.0, 0, False),
    "what the hell": (1.0, 1.0, 0, False), "what the heck": (0.6, 0.8, 0, False),
    "wtf": (1.0, 1.0, 0, True), "for gods sake": (1.0, 1.0, 0, False),
    "waste of time": (1.0, 1.0, 0, False), "waste of my time": (1.0, 1.0, 0, False),
    "how many times": (0.7, 0.8, 0, False), "i already told you": (0.7, 0.8, 0, False),
    "are you kidding": (0.7, 0.8, 0, False), "scam": (0.8, 1.0, 0, False),
    "rip off": (0.8, 1.0, 0, False), "ripoff": (0.8, 1.0, 0, False),
    "unbelievable": (0.6, 0.8, 0, False), "disgusting": (1.0, 1.0, 0, False),
    "outrageous": (1.0, 1.0, 0, False), "hate": (0.6, 1.0, 0, False),
    "frustrated": (0.5, 1.0, 0, False), "frustrating": (0.5, 1.0, 0, False),
    "annoyed": (0.5, 0.8, 0, False), "annoying": (0.5, 0.8, 0, False),
    "damn": (0.6, 0.8, 0, False), "damn it": (1.0, 1.0, 0, False),
    "idiot": (1.0, 1.0, 0, True), "idiots": (1.0, 1.0, 0, True),
    "stupid": (1.0, 1.0, 0, True), "moron": (1.0, 1.0, 0, True), "dumb": (0.8, 1.0, 0, True),
    "shut up": (1.0, 1.0, 0, True), "screw you": (1.0, 1.0, 0, True),
    "fuck": (1.0, 1.0, 0, True), "fucking": (1.0, 1.0, 0, True), "shit": (0.8, 1.0, 0, True),
    "bullshit": (1.0, 1.0, 0, True), "bloody": (0.6, 0.8, 0, True),
    "crap": (0.6, 0.8, 0, True), "bastard": (1.0, 1.0, 0, True),
    # negative
    "not happy": (0, 1.0, 0, False), "unhappy": (0, 1.0, 0, False),
    "disappointed": (0.2, 1.0, 0, False), "disappointing": (0.2, 1.0, 0, False),
    "upset": (0.3, 0.8, 0, False), "problem": (0, 0.4, 0, False),
    "issue": (0, 0.3, 0, False), "bad": (0, 0.6, 0, False), "worse": (0.2, 0.8, 0, False),
    "terrible": (0.3, 1.0, 0, False), "awful": (0.3, 1.0, 0, False),
    "horrible": (0.3, 1.0, 0, False), "expensive": (0, 0.5, 0, False),
    "too much": (0, 0.4, 0, False), "worried": (0, 0.5, 0, False),
    "concerned": (0, 0.4, 0, False), "complain": (0.2, 0.6, 0, False),
    "complaint": (0.2, 0.6, 0, False), "wrong": (0, 0.4, 0, False),
    "broken": (0, 0.5, 0, False), "unfortunately": (0, 0.4, 0, False),
    "sad": (0, 0.5, 0, False), "poor": (0, 0.5, 0, False), "rude": (0.4, 0.8, 0, False),
    "late": (0, 0.3, 0, False), "delayed": (0, 0.4, 0, False),
    # positive
    "great": (0, 0, 0.6, False), "perfect": (0, 0, 0.8, False),
    "wonderful": (0, 0, 0.8, False), "excellent": (0, 0, 0.8, False),
    "awesome": (0, 0, 0.8, False), "amazing": (0, 0, 0.8, False),
    "fantastic": (0, 0, 0.8, False), "brilliant": (0, 0, 0.8, False),
    "love": (0, 0, 0.7, False), "lovely": (0, 0, 0.6, False), "happy": (0, 0, 0.6, False),
    "glad": (0, 0, 0.6, False), "thank you": (0, 0, 0.5, False), "thanks": (0, 0, 0.5, False),
    "appreciate": (0, 0, 0.6, False), "nice": (0, 0, 0.4, False), "good": (0, 0, 0.4, False),
    "helpful": (0, 0, 0.6, False), "excited": (0, 0, 0.7, False),
    "interested": (0, 0, 0.3, False), "sounds good": (0, 0, 0.6, False),
}
# fmt: on
_TERMS: Final = re.compile(
    r"\b(" + "|".join(re.escape(t) for t in sorted(_LEXICON, key=len, reverse=True)) + r")\b"
)
_NEGATORS: Final = frozenset(
    {"not", "no", "never", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "cant", "wont",
     "hardly", "nothing", "nobody", "without"}
)  # fmt: skip
_INTENSIFIERS: Final = frozenset(
    {"very", "so", "really", "extremely", "totally", "absolutely", "completely", "too", "super",
     "truly", "bloody", "fucking"}
)  # fmt: skip
_SHOUT: Final = re.compile(r"\b[A-Z]{3,}\b")
_ANGRY_AT: Final = 1.0


def detect_tone(text: str, normalized: str | None = None) -> ToneResult:
    """Score the tone of one utterance.

    Args:
        text: the transcript as recognised (capitals and "!" are evidence).
        normalized: `normalize(text)` if already computed.

    Returns:
        The tone and its evidence.
    """
    words = normalize(text) if normalized is None else normalized
    anger = negative = positive = 0.0
    abusive = False
    previous_end = 0
    for match in _TERMS.finditer(words):
        term = match.group(1)
        term_anger, term_negative, term_positive, term_abusive = _LEXICON[term]
        # Look back at most three words, and not past the previous term: in "not bad,
        # thanks" the "not" belongs to "bad", not to "thanks".
        before = words[previous_end : match.start()].split()[-3:]
        previous_end = match.end()
        scale = 1.5 if before and before[-1] in _INTENSIFIERS else 1.0
        if any(word in _NEGATORS for word in before) and not term_abusive:
            # "not happy" is negative; "not bad" is mildly positive; anger words stay.
            if term_positive:
                negative += term_positive * scale
                continue
            if not term_anger:
                positive += 0.3
                continue
        anger += term_anger * scale
        negative += term_negative * scale
        positive += term_positive * scale
        abusive = abusive or term_abusive
    if negative or anger:
        shouted = len(_SHOUT.findall(text))
        if shouted >= 2:
            anger += 0.5
        if text.count("!") >= 2:
            anger += 0.3
    valence = max(-1.0, min(1.0, (positive - negative) / 2))
    if anger >= _ANGRY_AT or (abusive and anger > 0):
        tone = Tone.ANGRY
    elif negative - positive >= 0.5:
        tone = Tone.NEGATIVE
    elif positive - negative >= 0.5:
        tone = Tone.POSITIVE
    else:
        tone = Tone.NEUTRAL
    return ToneResult(tone, round(valence, 3), round(anger, 3), abusive)
