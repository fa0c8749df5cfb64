"""Tone: neutral, positive, negative, angry (and abusive)."""

from __future__ import annotations

import pytest

from ai_pipeline.nlp import Tone, detect_tone


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("I'd like to book a table for two", Tone.NEUTRAL),
        ("what time do you open", Tone.NEUTRAL),
        ("That's perfect, thank you so much!", Tone.POSITIVE),
        ("sounds great", Tone.POSITIVE),
        ("Not bad, thanks", Tone.POSITIVE),
        ("I'm not happy with the service", Tone.NEGATIVE),
        ("that's a bit expensive and I'm worried", Tone.NEGATIVE),
        ("unfortunately it was not good", Tone.NEGATIVE),
        ("This is ridiculous", Tone.ANGRY),
        ("I'm fed up with waiting", Tone.ANGRY),
        ("what a waste of my time", Tone.ANGRY),
        ("you stupid bot", Tone.ANGRY),
        ("THIS IS NOT OKAY, I AM UPSET!!", Tone.ANGRY),
    ],
)
def test_tone(text: str, tone: Tone) -> None:
    assert detect_tone(text).tone is tone


def test_abuse_is_flagged_separately_from_anger() -> None:
    assert detect_tone("you idiot").abusive
    assert not detect_tone("this is ridiculous").abusive


def test_intensifiers_raise_the_score() -> None:
    plain = detect_tone("I'm annoyed")
    strong = detect_tone("I'm really annoyed")
    assert strong.anger > plain.anger
    assert plain.tone is Tone.NEGATIVE


def test_valence_is_bounded() -> None:
    result = detect_tone("great perfect wonderful amazing fantastic brilliant excellent")
    assert result.valence == 1.0
