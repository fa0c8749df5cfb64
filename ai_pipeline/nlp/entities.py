"""The details a caller gives: numbers, money, dates, times, party size, phone, yes/no, name.

`extract_entities` runs every extractor on one transcript. The number, money and
date/time parsers live in their own modules; this one adds the small ones and the
aggregate. Everything is regular expressions compiled at import.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from ai_pipeline.nlp.dates import (
    DateMention,
    PartOfDay,
    TimeMention,
    find_dates,
    find_part_of_day,
    find_times,
)
from ai_pipeline.nlp.money import Money, find_money
from ai_pipeline.nlp.normalize import normalize, prepare
from ai_pipeline.nlp.numbers import digitize

__all__ = [
    "Entities",
    "YesNo",
    "extract_entities",
    "find_party_size",
    "find_person_name",
    "find_phone_numbers",
    "find_yes_no",
]

YesNo = Literal["yes", "no"]

# --- party size ------------------------------------------------------------------------

# Recognisers write a spoken number as its homophone ("a table for for"); only trusted
# right after "table for" / "party of", where nothing else fits.
_HOMOPHONES: Final = {"to": 2, "too": 2, "for": 4, "ate": 8}
_NOT_CLOCK: Final = r"(?!\s?(?:am|pm|o ?clock|noon)\b|:\d|st\b|nd\b|rd\b|th\b)"
_PARTY: Final = (
    re.compile(
        r"\b(?:table|party|group|booking|reservation|reserve|book|seats?|seating|reserve it"
        rf"|book it) (?:of|for) (?P<n>\d{{1,2}}|to|too|for|ate)\b{_NOT_CLOCK}"
    ),
    re.compile(r"\b(?P<n>\d{1,2}) (?:people|persons?|guests|adults|pax|diners|of us|heads)\b"),
    re.compile(
        r"\b(?:we are|were|we will be|well be|there will be|therell be|there are|we have)"
        rf" (?P<n>\d{{1,2}})\b{_NOT_CLOCK}"
    ),
    re.compile(r"\bme and (?P<plus>\d{1,2}) (?:others|friends|colleagues|more|guests)\b"),
)
_LOOSE_PARTY: Final = re.compile(
    r"(?:^|\bfor |\bof |\bmake it |\bjust |\bonly )(?P<n>\d{1,2})\b"
    r"(?!\s?(?:am|pm|o ?clock|noon|days?|weeks?|months?|years?|hours?|minutes?)\b|:\d|st\b|nd\b"
    r"|rd\b|th\b)"
)
_ALONE: Final = re.compile(r"\b(?:just me|only me|just myself|by myself|myself only|alone)\b")
_COUPLE: Final = re.compile(
    r"\b(?:me and my (?:wife|husband|partner|friend|girlfriend|boyfriend|son|daughter|mother"
    r"|father|mom|mum|dad|colleague|date)|a couple|couple of us|my (?:wife|husband|partner)"
    r" and (?:i|me))\b"
)

# --- phone numbers ---------------------------------------------------------------------

_PHONE: Final = re.compile(r"(?<![\d$\u20b9])(?P<plus>\+)?(?P<digits>\d(?: ?\d){6,14})(?!\d)")
_MONEY_AFTER: Final = re.compile(r"^\s?(?:dollars?|rupees?|rs|lakhs?|crores?|bucks)\b")

# --- yes / no --------------------------------------------------------------------------

_YES_START: Final = re.compile(
    r"^(?:yes|yeah|yea|yep|yup|ya|yah|yes please|sure|ok|okay|okey|alright|all right|right"
    r"|correct|exactly|absolutely|definitely|of course|certainly|please do|please|go ahead"
    r"|sounds good|sounds great|sounds perfect|perfect|great|fine|that works|works for me"
    r"|that would be (?:great|helpful|good|nice|fine|perfect)|id like that|i would like that"
    r"|why not|no problem|no worries|haan|han|haa|haanji|ha ji|ji haan|ji|theek hai|thik hai"
    r"|theek|achha|acha|bilkul|done|deal|lets do it|lets do that)\b"
)
_YES_ALONE: Final = re.compile(r"^(?:i do|i can|i will|i would|i have|i think so|it is|thats it)$")
_NO_START: Final = re.compile(
    r"^(?:no|nope|nah|na|not really|not now|not at all|never|no thanks|no thank you"
    r"|i dont|i do not|i cant|i cannot|i wont|i will not|nahi|nahin|nai|dont)\b"
)
_YES_THEN_NO: Final = re.compile(r"^(?:yeah|yes|yea|ya) no\b")
_NO_ANYWHERE: Final = re.compile(
    r"\b(?:not really|dont think so|do not think so|not interested|thats not right|that is not"
    r" right|thats wrong|not correct|incorrect|doesnt work|does not work|wont work|not a good"
    r" time|not for me|not right now)\b"
)
_YES_ANYWHERE: Final = re.compile(
    r"\b(?:that works|works for me|sounds good|sounds great|thats right|that is right"
    r"|thats correct|that is correct|you got it|lets do it|book it|please do|go ahead"
    r"|i think so)\b|\bworks(?: fine| great| for me)?$"
)
_UNSURE: Final = re.compile(
    r"\b(?:not sure|maybe|perhaps|dont know|do not know|no idea|might|possibly)\b"
)

# --- names -----------------------------------------------------------------------------

_NAME_STRONG: Final = re.compile(
    r"\b(?:my name is|my names|name is|the name is|call me|under the name|under the name of"
    r"|under|put it under|in the name of)\s(?P<name>[a-z]+(?: [a-z]+)?)"
)
_NAME_LOOSE: Final = re.compile(
    r"^(?:(?:its|it is|this is|i am|im|yes its|yeah its|sure its)\s)?(?P<name>[a-z]+(?: [a-z]+)?)"
    r"(?: (?:here|speaking))?$"
)
# fmt: off
_NOT_NAMES: Final = frozenset({
    "a", "an", "the", "my", "your", "for", "not", "no", "yes", "yeah", "ok", "okay", "sure",
    "fine", "good", "great", "calling", "looking", "interested", "here", "just", "also", "so",
    "very", "really", "about", "going", "trying", "from", "me", "it", "that", "this", "is",
    "to", "and", "or", "but", "please", "thanks", "thank", "you", "sorry", "hi", "hello",
    "hey", "today", "tomorrow", "tonight", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "morning", "evening", "afternoon", "next", "at",
    "on", "in", "of", "with", "we", "i", "he", "she", "they", "am", "pm", "what", "why", "how",
    "who", "when", "where", "can", "could", "would", "will", "do", "dont", "need", "want",
    "like", "table", "booking", "reservation", "appointment", "people", "person", "bye",
    "goodbye", "busy", "well", "um", "uh", "hmm", "right", "correct", "wrong", "nothing",
})
# fmt: on


@dataclass(frozen=True, slots=True)
class Entities:
    """Everything extracted from one transcript.

    Attributes:
        digitized: the prepared transcript with numbers in digits (see `digitize`).
        numbers: every number, in order (``"four five six"`` is one number, 456).
        money: amounts of money.
        dates: calendar days, resolved against today.
        times: times of day.
        part_of_day: morning / afternoon / evening / night, if said.
        party_size: how many people, from phrasings like "table for four".
        phone_numbers: phone numbers (7 to 15 digits, ``+`` kept).
        yes_no: the answer to a yes/no question, if the utterance is one.
        person_name: a name the caller gave ("my name is ...", "under ...").
    """

    digitized: str
    numbers: tuple[Decimal, ...] = ()
    money: tuple[Money, ...] = ()
    dates: tuple[DateMention, ...] = ()
    times: tuple[TimeMention, ...] = ()
    part_of_day: PartOfDay | None = None
    party_size: int | None = None
    phone_numbers: tuple[str, ...] = ()
    yes_no: YesNo | None = None
    person_name: str | None = None


def find_party_size(digitized: str, *, loose: bool = False) -> int | None:
    """How many people the caller wants a table for, if said.

    Args:
        digitized: digitized text.
        loose: also accept a bare number ("six", "make it 6"); for answers to "how many?".

    Returns:
        The party size (1-99) or None.
    """
    if _ALONE.search(digitized):
        return 1
    for pattern in _PARTY:
        match = pattern.search(digitized)
        if match is None:
            continue
        if "plus" in pattern.groupindex:
            return int(match["plus"]) + 1
        word = match["n"]
        size = _HOMOPHONES[word] if word in _HOMOPHONES else int(word)
        if size >= 1:
            return size
    if _COUPLE.search(digitized):
        return 2
    if loose:
        match = _LOOSE_PARTY.search(digitized)
        if match is not None and int(match["n"]) >= 1:
            return int(match["n"])
    return None


def find_phone_numbers(digitized: str) -> tuple[str, ...]:
    """Phone numbers: 7 to 15 digits, possibly in spoken groups ("98765 43210").

    Args:
        digitized: digitized text.

    Returns:
        Each number as digits, with a leading ``+`` when the caller said one.
    """
    found: list[str] = []
    for match in _PHONE.finditer(digitized):
        if _MONEY_AFTER.match(digitized[match.end() :]):
            continue
        digits = match["digits"].replace(" ", "")
        found.append(("+" if match["plus"] else "") + digits)
    return tuple(found)


def find_yes_no(normalized: str) -> YesNo | None:
    """Whether the utterance answers a yes/no question, and how.

    Args:
        normalized: text from `normalize`.

    Returns:
        ``yes``, ``no`` or None (not an answer, or unsure: "maybe", "not sure").
    """
    if not normalized:
        return None
    if _YES_THEN_NO.search(normalized):
        return "no"
    if _NO_START.search(normalized) and not normalized.startswith(("no problem", "no worries")):
        return "no"
    if _YES_START.search(normalized) or _YES_ALONE.search(normalized):
        return "yes"
    if _UNSURE.search(normalized):
        return None
    if _NO_ANYWHERE.search(normalized):
        return "no"
    if _YES_ANYWHERE.search(normalized):
        return "yes"
    return None


def _clean_name(candidate: str) -> str | None:
    words = candidate.split()
    while words and words[-1] in _NOT_NAMES:
        words.pop()
    if not words or words[0] in _NOT_NAMES or any(len(w) < 2 for w in words):
        return None
    return " ".join(w.capitalize() for w in words)


def find_person_name(normalized: str, *, loose: bool = False) -> str | None:
    """A name the caller gave, title-cased.

    Args:
        normalized: text from `normalize`.
        loose: also accept "it's Sam", "Sam here" or a bare one- or two-word answer;
            for answers to "what name?" only.

    Returns:
        The name or None.
    """
    match = _NAME_STRONG.search(normalized)
    if match is not None:
        name = _clean_name(match["name"])
        if name is not None:
            return name
    if loose:
        match = _NAME_LOOSE.search(normalized)
        if match is not None:
            return _clean_name(match["name"])
    return None


def extract_entities(text: str, *, today: dt.date, normalized: str | None = None) -> Entities:
    """Run every extractor on one transcript.

    Args:
        text: the transcript as recognised.
        today: the caller's today, for relative dates.
        normalized: `normalize(text)` if the caller already has it.

    Returns:
        The entities found.
    """
    digitized = digitize(prepare(text))
    words = normalize(text) if normalized is None else normalized
    return Entities(
        digitized=digitized.text,
        numbers=tuple(number.value for number in digitized.numbers),
        money=find_money(digitized),
        dates=find_dates(digitized.text, today),
        times=find_times(digitized.text),
        part_of_day=find_part_of_day(digitized.text),
        party_size=find_party_size(digitized.text),
        phone_numbers=find_phone_numbers(digitized.text),
        yes_no=find_yes_no(words),
        person_name=find_person_name(words),
    )
