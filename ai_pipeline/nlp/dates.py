"""Dates and times of day, relative to "now": "tomorrow at 2pm", "this Saturday", "at 7:30".

Works on digitized text (see `digitize`), so "seven thirty p m" arrives as "7 30 pm".

Conventions, chosen because the bot always reads the resolved date back to the caller
(who corrects it if we guessed wrong):

- "Saturday", "on Saturday", "coming Saturday": the next Saturday after today;
  "this Saturday": today if today is Saturday, else the next one;
- "next Saturday": the Saturday of next week (weeks start on Monday), so said on a
  Monday it is 12 days away and said on a Sunday it is 6;
- "this weekend" / "next week": the Saturday / the Monday, marked approximate;
- "the 15th": the 15th of this month, or of next month once it has passed;
  "March 5" / "5th of March": this year, or next year once it has passed.

A time without am/pm ("at 7") is *ambiguous*: it keeps the hour as said and lists both
readings in `TimeMention.candidates`; a part of day said anywhere in the utterance
("tomorrow evening at 7", "at 7 tonight") settles it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DateMention",
    "PartOfDay",
    "TimeMention",
    "find_dates",
    "find_part_of_day",
    "find_times",
    "parse_date",
    "parse_time",
    "speak_date",
    "speak_time",
]

PartOfDay = Literal["morning", "afternoon", "evening", "night"]

_WEEKDAYS: Final = {
    "monday": 0, "mon": 0, "tuesday": 1, "tues": 1, "wednesday": 2, "wensday": 2, "weds": 2,
    "thursday": 3, "thurs": 3, "thursdays": 3, "friday": 4, "fri": 4, "saturday": 5,
    "sunday": 6, "mondays": 0, "tuesdays": 1, "wednesdays": 2, "fridays": 4, "saturdays": 5,
    "sundays": 6,
}  # fmt: skip
_MONTHS: Final = {
    name: index
    for index in range(1, 13)
    for name in (calendar.month_name[index].lower(), calendar.month_abbr[index].lower())
} | {"sept": 9}
_MONTH_RE: Final = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY_RE: Final = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_TOMORROW: Final = r"(?:tomorrow|tomorow|tommorow|tommorrow|tmrw|to morrow)"

_DATE_PATTERNS: Final = re.compile(
    rf"\b(?P<after>day after {_TOMORROW})\b"
    rf"|\b(?P<tomorrow>{_TOMORROW})\b"
    r"|\b(?P<today>today|tonight|this (?:morning|afternoon|evening))\b"
    r"|\b(?P<yesterday>yesterday)\b"
    rf"|\b(?:(?P<mod>this|next|coming|upcoming|following|on) )?(?P<weekday>{_WEEKDAY_RE})"
    r"(?P<nextweek> next week)?\b"
    r"|\b(?P<wemod>this|next|coming) weekend\b"
    r"|\b(?P<weekend>weekend)\b"
    r"|\b(?P<nextwk>next week)\b"
    r"|\bin (?P<count>\d+|a|an|one) (?P<unit>days?|weeks?)\b"
    r"|\b(?:a|one) week from (?:today|now)\b(?P<weekfrom>)"
    rf"|\b(?P<d1>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<m1>{_MONTH_RE})\b(?: (?P<y1>\d{{4}}))?"
    rf"|\b(?P<m2>{_MONTH_RE}) (?:the )?(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\b(?: (?P<y2>\d{{4}}))?"
    r"|\b(?:the|on the) (?P<d3>\d{1,2})(?:st|nd|rd|th)\b"
)
_ISO_DATE: Final = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[t ].*)?$", re.IGNORECASE)

_H = r"(?:[01]?\d|2[0-3])"
_M = r"[0-5]\d"
_NOT_A_TIME: Final = (
    r"(?!\s?(?:people|persons?|guests|adults|kids|children|of us|days?|weeks?|months?|years?"
    r"|minutes?|mins?|hours?|hrs?|lakhs?|crores?|million|dollars|rupees|percent|%|pax"
    r"|bhk|seats?|tables?|times?)\b)"
)
# "at 7" must not win over "7 pm" / "7 30 pm" / "7 oclock" further on.
_NOT_MERIDIEM: Final = rf"(?!(?: {_M})? ?(?:am|pm|o ?clock|noon|midday|midnight)\b|:\d)"
_TIME_PATTERNS: Final = re.compile(
    rf"\b(?P<ch>{_H}):(?P<cm>{_M})(?:\s?(?P<cmer>am|pm))?\b"
    rf"|\b(?P<sh>{_H}) (?P<sm>{_M}) ?(?P<smer>am|pm)\b"
    rf"|\b(?P<jh>[1-9]|1[0-2])(?P<jm>{_M}) ?(?P<jmer>am|pm)\b"
    rf"|\b(?P<h>{_H}) ?(?P<mer>am|pm)\b"
    rf"|\b(?P<oh>{_H})(?: (?P<om>{_M}))? ?o ?clock\b"
    r"|\b(?P<past>half|quarter) past (?P<ph>\d{1,2})\b"
    r"|\bquarter (?:to|till|of) (?P<th>\d{1,2})\b"
    r"|\b(?:12 )?(?P<noon>noon|midday|midnight)\b"
    rf"|\b(?:at|around|about|by|after|before|till|until|from)(?: like)? (?P<ah>{_H})"
    rf"(?: (?P<am>{_M}))?\b{_NOT_A_TIME}{_NOT_MERIDIEM}"
)
_LOOSE_TIME: Final = re.compile(rf"\b(?P<h>{_H})(?:[: ](?P<m>{_M}))?\b{_NOT_A_TIME}{_NOT_MERIDIEM}")
_PART_OF_DAY: Final = re.compile(
    r"\b(?P<part>morning|afternoon|evening|night|tonight|lunch|lunchtime|dinner)\b"
)
_PARTS: Final[dict[str, PartOfDay]] = {
    "morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night",
    "tonight": "evening", "lunch": "afternoon", "lunchtime": "afternoon", "dinner": "evening",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DateMention:
    """A calendar day the caller mentioned.

    Attributes:
        date: the day, resolved against today.
        text: the words it came from.
        approximate: a vague reference ("this weekend", "next week").
    """

    date: dt.date
    text: str
    approximate: bool = False


@dataclass(frozen=True, slots=True)
class TimeMention:
    """A time of day the caller mentioned.

    Attributes:
        hour: 0-23; for an ambiguous time, the hour as said (1-12).
        minute: 0-59.
        ambiguous: said without am/pm or a part of day ("at 7").
        text: the words it came from.
    """

    hour: int
    minute: int
    ambiguous: bool
    text: str

    @property
    def time(self) -> dt.time:
        """The time as said (the morning reading when ambiguous)."""
        return dt.time(self.hour, self.minute)

    def candidates(self) -> tuple[dt.time, ...]:
        """Every reading: one, or for an ambiguous "7" both 7:00 and 19:00."""
        if not self.ambiguous or self.hour >= 12 or self.hour == 0:
            return (self.time,)
        return (self.time, dt.time(self.hour + 12, self.minute))


def _add_months_day(today: dt.date, day: int) -> dt.date | None:
    """The next date with day-of-month ``day`` on or after today."""
    year, month = today.year, today.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1]:
            candidate = dt.date(year, month, day)
            if candidate >= today:
                return candidate
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None


def _month_day(today: dt.date, month: int, day: int, year: str | None) -> dt.date | None:
    try:
        if year is not None:
            return dt.date(int(year), month, day)
        candidate = dt.date(today.year, month, day)
        if candidate < today:
            candidate = dt.date(today.year + 1, month, day)
        return candidate
    except ValueError:
        return None


def _weekday(today: dt.date, target: int, modifier: str | None, next_week: bool) -> dt.date:
    delta = (target - today.weekday()) % 7
    if modifier == "next" or next_week:
        delta = delta or 7
        if today.weekday() + delta <= 6:
            delta += 7  # still this week: "next" means the one in the following week
    elif delta == 0 and modifier != "this":
        delta = 7
    return today + dt.timedelta(days=delta)


def _resolve_date(match: re.Match[str], today: dt.date) -> DateMention | None:
    g = match.groupdict()
    text = match.group()
    if g["after"]:
        return DateMention(today + dt.timedelta(days=2), text)
    if g["tomorrow"]:
        return DateMention(today + dt.timedelta(days=1), text)
    if g["today"]:
        return DateMention(today, text)
    if g["yesterday"]:
        return DateMention(today - dt.timedelta(days=1), text)
    if g["weekday"]:
        day = _weekday(today, _WEEKDAYS[g["weekday"]], g["mod"], bool(g["nextweek"]))
        return DateMention(day, text)
    if g["wemod"] or g["weekend"]:
        if g["wemod"] == "next":
            return DateMention(_weekday(today, 5, "next", False), text, approximate=True)
        if today.weekday() >= 5:
            return DateMention(today, text, approximate=True)
        return DateMention(_weekday(today, 5, "this", False), text, approximate=True)
    if g["nextwk"]:
        return DateMention(_weekday(today, 0, "next", False), text, approximate=True)
    if g["count"]:
        count = 1 if g["count"] in ("a", "an", "one") else int(g["count"])
        days = count * (7 if g["unit"].startswith("week") else 1)
        return DateMention(today + dt.timedelta(days=days), text)
    if g["weekfrom"] is not None:
        return DateMention(today + dt.timedelta(days=7), text)
    if g["m1"] or g["m2"]:
        month = _MONTHS[g["m1"] or g["m2"]]
        day_number = int(g["d1"] or g["d2"])
        resolved = _month_day(today, month, day_number, g["y1"] or g["y2"])
        return DateMention(resolved, text) if resolved else None
    if g["d3"]:
        day_of_month = _add_months_day(today, int(g["d3"]))
        return DateMention(day_of_month, text) if day_of_month else None
    return None


def find_dates(text: str, today: dt.date) -> tuple[DateMention, ...]:
    """Every calendar day mentioned in a digitized transcript, in order.

    Args:
        text: digitized text (see `digitize`).
        today: the caller's today.

    Returns:
        The dates found (possibly none).
    """
    found: list[DateMention] = []
    for match in _DATE_PATTERNS.finditer(text):
        mention = _resolve_date(match, today)
        if mention is not None:
            found.append(mention)
    return tuple(found)


def find_part_of_day(text: str) -> PartOfDay | None:
    """The first part of the day mentioned ("morning", "tonight" → evening), if any."""
    match = _PART_OF_DAY.search(text)
    return _PARTS[match.group("part")] if match else None


def _meridiem(hour: int, minute: int, meridiem: str | None, part: PartOfDay | None) -> TimeMention:
    if meridiem == "am":
        return TimeMention(hour % 12, minute, False, "")
    if meridiem == "pm":
        return TimeMention(hour % 12 + 12, minute, False, "")
    if hour == 0 or hour > 12:
        return TimeMention(hour, minute, False, "")
    if part == "morning":
        return TimeMention(hour % 12, minute, False, "")
    if part in ("afternoon", "evening"):
        return TimeMention(hour % 12 + 12, minute, False, "")
    if part == "night":
        # "10 at night" is 22:00, "2 at night" is 2:00 in the small hours.
        return TimeMention(hour % 12 + 12 if hour >= 6 else hour % 12, minute, False, "")
    return TimeMention(hour, minute, True, "")


def _resolve_time(match: re.Match[str], part: PartOfDay | None) -> TimeMention | None:
    g = match.groupdict()
    if g["ch"] is not None:
        hour, minute, mer = int(g["ch"]), int(g["cm"]), g["cmer"]
    elif g["sh"] is not None:
        hour, minute, mer = int(g["sh"]), int(g["sm"]), g["smer"]
    elif g["jh"] is not None:
        hour, minute, mer = int(g["jh"]), int(g["jm"]), g["jmer"]
    elif g["h"] is not None:
        hour, minute, mer = int(g["h"]), 0, g["mer"]
    elif g["oh"] is not None:
        hour, minute, mer = int(g["oh"]), int(g["om"] or 0), None
    elif g["past"] is not None:
        hour, minute, mer = int(g["ph"]), 30 if g["past"] == "half" else 15, None
    elif g["th"] is not None:
        hour, minute, mer = (int(g["th"]) - 1) % 12 or 12, 45, None
    elif g["noon"] is not None:
        hour = 0 if g["noon"] == "midnight" else 12
        return TimeMention(hour, 0, False, match.group())
    else:
        hour, minute, mer = int(g["ah"]), int(g["am"] or 0), None
    if mer is not None and not 1 <= hour <= 12:
        return None
    if hour > 23:
        return None
    resolved = _meridiem(hour, minute, mer, part)
    return TimeMention(resolved.hour, resolved.minute, resolved.ambiguous, match.group())


def find_times(text: str, *, loose: bool = False) -> tuple[TimeMention, ...]:
    """Every time of day mentioned in a digitized transcript, in order.

    Args:
        text: digitized text (see `digitize`).
        loose: also take a bare number ("7", "7 30") as a time; for answers to "what
            time?" only.

    Returns:
        The times found (possibly none).
    """
    part = find_part_of_day(text)
    found = [
        mention
        for match in _TIME_PATTERNS.finditer(text)
        if (mention := _resolve_time(match, part)) is not None
    ]
    if not found and loose:
        match = _LOOSE_TIME.search(text)
        if match is not None:
            resolved = _meridiem(int(match["h"]), int(match["m"] or 0), None, part)
            found.append(
                TimeMention(resolved.hour, resolved.minute, resolved.ambiguous, match.group())
            )
    return tuple(found)


def parse_date(text: str, today: dt.date) -> dt.date | None:
    """One date from free text or ISO ``YYYY-MM-DD`` (tool-call arguments use both).

    Args:
        text: raw text; it is prepared and digitized here.
        today: the caller's today.

    Returns:
        The first date found, or None.
    """
    iso = _ISO_DATE.match(text)
    if iso is not None:
        try:
            return dt.date(int(iso[1]), int(iso[2]), int(iso[3]))
        except ValueError:
            return None
    from ai_pipeline.nlp.normalize import prepare
    from ai_pipeline.nlp.numbers import digitize

    found = find_dates(digitize(prepare(text)).text, today)
    return found[0].date if found else None


def parse_time(text: str, *, loose: bool = True) -> TimeMention | None:
    """One time of day from free text or ``HH:MM`` (24-hour) tool-call arguments.

    Args:
        text: raw text; it is prepared and digitized here.
        loose: accept a bare number as the hour.

    Returns:
        The first time found, or None.
    """
    from ai_pipeline.nlp.normalize import prepare
    from ai_pipeline.nlp.numbers import digitize

    found = find_times(digitize(prepare(text)).text, loose=loose)
    return found[0] if found else None


def speak_date(day: dt.date, today: dt.date | None = None) -> str:
    """How the bot says a date: "today", "tomorrow", "Saturday, June 14th".

    Args:
        day: the date.
        today: when given, today and tomorrow are said as such.

    Returns:
        Text for speech.
    """
    if today is not None:
        if day == today:
            return "today"
        if day == today + dt.timedelta(days=1):
            return "tomorrow"
    n = day.day
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{calendar.day_name[day.weekday()]}, {calendar.month_name[day.month]} {n}{suffix}"


def speak_time(value: dt.time) -> str:
    """How the bot says a time: "2 PM", "7:30 PM", "noon", "midnight"."""
    if value.minute == 0 and value.hour == 12:
        return "noon"
    if value.minute == 0 and value.hour == 0:
        return "midnight"
    hour = value.hour % 12 or 12
    suffix = "AM" if value.hour < 12 else "PM"
    clock = f"{hour}:{value.minute:02d}" if value.minute else str(hour)
    return f"{clock} {suffix}"
