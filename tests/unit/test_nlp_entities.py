"""Entities: money, dates, times, party size, phone numbers, yes/no, names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ai_pipeline.nlp import Entities, extract_entities, find_person_name, find_yes_no, normalize
from ai_pipeline.nlp.dates import parse_date, parse_time, speak_date, speak_time

WEDNESDAY = dt.date(2025, 6, 11)
SUNDAY = dt.date(2025, 6, 15)


def entities(text: str, today: dt.date = WEDNESDAY) -> Entities:
    return extract_entities(text, today=today)


# --- money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("my budget is 80 lakhs", 8_000_000, "INR"),
        ("around eighty lakh rupees", 8_000_000, "INR"),
        ("1.5 crore", 15_000_000, "INR"),
        ("one point five crore", 15_000_000, "INR"),
        ("Rs. 50,000", 50_000, "INR"),
        ("₹ 2,500", 2_500, "INR"),
        ("$500", 500, "USD"),
        ("five thousand dollars", 5_000, "USD"),
        ("2 million dollars", 2_000_000, "USD"),
        ("about 20 euros", 20, "EUR"),
        ("£30", 30, "GBP"),
        ("somewhere near 50k", 50_000, None),
    ],
)
def test_money(text: str, amount: int, currency: str | None) -> None:
    money = entities(text).money
    assert [(m.amount, m.currency) for m in money] == [(Decimal(amount), currency)]


@pytest.mark.parametrize("text", ["table for 4", "3 bedrooms", "it's 7 30", "four five six"])
def test_plain_numbers_are_not_money(text: str) -> None:
    assert entities(text).money == ()


# --- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "today"),
    [
        ("tomorrow at 2pm", dt.date(2025, 6, 12), WEDNESDAY),
        ("to morrow", dt.date(2025, 6, 12), WEDNESDAY),
        ("today", WEDNESDAY, WEDNESDAY),
        ("tonight", WEDNESDAY, WEDNESDAY),
        ("day after tomorrow", dt.date(2025, 6, 13), WEDNESDAY),
        ("this Saturday", dt.date(2025, 6, 14), WEDNESDAY),
        ("on saturday", dt.date(2025, 6, 14), WEDNESDAY),
        ("Friday", dt.date(2025, 6, 13), WEDNESDAY),
        ("next Monday morning", dt.date(2025, 6, 16), WEDNESDAY),
        ("next Friday", dt.date(2025, 6, 20), WEDNESDAY),  # Friday of next week
        ("this wednesday", WEDNESDAY, WEDNESDAY),
        ("wednesday", dt.date(2025, 6, 18), WEDNESDAY),
        ("next saturday", dt.date(2025, 6, 21), SUNDAY),
        ("this weekend", dt.date(2025, 6, 14), WEDNESDAY),
        ("in two weeks", dt.date(2025, 6, 25), WEDNESDAY),
        ("in 3 days", dt.date(2025, 6, 14), WEDNESDAY),
        ("the 20th", dt.date(2025, 6, 20), WEDNESDAY),
        ("the 5th", dt.date(2025, 7, 5), WEDNESDAY),
        ("March 5th", dt.date(2026, 3, 5), WEDNESDAY),
        ("the twenty first of june", dt.date(2025, 6, 21), WEDNESDAY),
        ("july 4 2026", dt.date(2026, 7, 4), WEDNESDAY),
    ],
)
def test_dates(text: str, expected: dt.date, today: dt.date) -> None:
    assert [d.date for d in entities(text, today).dates] == [expected]


def test_vague_dates_are_marked_approximate() -> None:
    assert entities("sometime next week").dates[0].approximate
    assert not entities("next monday").dates[0].approximate


def test_iso_dates_for_tool_arguments() -> None:
    assert parse_date("2025-07-01", WEDNESDAY) == dt.date(2025, 7, 1)
    assert parse_date("2025-02-30", WEDNESDAY) is None
    assert parse_date("this friday", WEDNESDAY) == dt.date(2025, 6, 13)


# --- times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hour", "minute", "ambiguous"),
    [
        ("tomorrow at 2pm", 14, 0, False),
        ("at 2 p.m.", 14, 0, False),
        ("seven thirty PM", 19, 30, False),
        ("at 7:30", 7, 30, True),
        ("at 19:30", 19, 30, False),
        ("at 7", 7, 0, True),
        ("around 9 in the morning", 9, 0, False),
        ("at 7 tonight", 19, 0, False),
        ("half past seven in the evening", 19, 30, False),
        ("quarter to eight", 7, 45, True),
        ("noon", 12, 0, False),
        ("12 noon", 12, 0, False),
        ("midnight", 0, 0, False),
        ("10 oclock", 10, 0, True),
        ("11 am", 11, 0, False),
    ],
)
def test_times(text: str, hour: int, minute: int, ambiguous: bool) -> None:
    times = entities(text).times
    assert [(t.hour, t.minute, t.ambiguous) for t in times] == [(hour, minute, ambiguous)]


def test_ambiguous_time_offers_both_readings() -> None:
    (seven,) = entities("at 7").times
    assert seven.candidates() == (dt.time(7), dt.time(19))


@pytest.mark.parametrize("text", ["a table for 4", "6 people", "in 2 days", "3 months", "80 lakhs"])
def test_counts_are_not_times(text: str) -> None:
    assert entities(text).times == ()


def test_bare_number_is_a_time_only_when_asked() -> None:
    assert parse_time("seven thirty", loose=False) is None
    loose = parse_time("seven thirty")
    assert loose is not None and (loose.hour, loose.minute) == (7, 30)


def test_spoken_forms() -> None:
    assert speak_date(dt.date(2025, 6, 14)) == "Saturday, June 14th"
    assert speak_date(dt.date(2025, 6, 12), WEDNESDAY) == "tomorrow"
    assert speak_date(dt.date(2025, 6, 22)) == "Sunday, June 22nd"
    assert speak_time(dt.time(19, 30)) == "7:30 PM"
    assert speak_time(dt.time(9)) == "9 AM"
    assert speak_time(dt.time(12)) == "noon"


def test_part_of_day() -> None:
    assert entities("next monday morning").part_of_day == "morning"
    assert entities("tonight").part_of_day == "evening"
    assert entities("whenever").part_of_day is None


# --- party size ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("a table for four", 4),
        ("table for for please", 4),  # recogniser homophone
        ("table for to", 2),
        ("party of 8 at 8", 8),
        ("six people", 6),
        ("there will be five of us", 5),
        ("we are 3", 3),
        ("just me", 1),
        ("me and my wife", 2),
        ("me and 3 friends", 4),
        ("book for 2 tomorrow at 7", 2),
    ],
)
def test_party_size(text: str, size: int) -> None:
    assert entities(text).party_size == size


@pytest.mark.parametrize("text", ["a table for tomorrow", "at 7 pm", "in 2 weeks", "hello"])
def test_no_party_size(text: str) -> None:
    assert entities(text).party_size is None


# --- phone numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("my number is nine eight seven six five four three two one zero", "9876543210"),
        ("call me on +1 555 123 4567", "+15551234567"),
        ("it's 98765 43210", "9876543210"),
        ("five five five, double one, two three four five", "555112345"),
    ],
)
def test_phone_numbers(text: str, phone: str) -> None:
    assert entities(text).phone_numbers == (phone,)


@pytest.mark.parametrize("text", ["table for 4 at 7", "80 lakhs", "1,50,000 rupees"])
def test_no_phone_numbers(text: str) -> None:
    assert entities(text).phone_numbers == ()


# --- yes / no ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Yes, sure", "yes"),
        ("yeah that works", "yes"),
        ("Sure, Saturday works", "yes"),
        ("sounds good", "yes"),
        ("Yes, that would be helpful", "yes"),
        ("that's right", "yes"),
        ("haan ji", "yes"),
        ("theek hai", "yes"),
        ("okay", "yes"),
        ("no problem, go ahead", "yes"),
        ("No", "no"),
        ("nope", "no"),
        ("no thanks", "no"),
        ("not really", "no"),
        ("yeah no", "no"),
        ("I don't think so", "no"),
        ("that doesn't work for me", "no"),
        ("nahi", "no"),
        ("maybe", None),
        ("I'm not sure", None),
        ("what time do you open", None),
    ],
)
def test_yes_no(text: str, answer: str | None) -> None:
    assert find_yes_no(normalize(text)) == answer


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "loose", "name"),
    [
        ("My name is John Smith", False, "John Smith"),
        ("put it under Patel please", False, "Patel"),
        ("call me Sam", False, "Sam"),
        ("it's Garcia", True, "Garcia"),
        ("Lee", True, "Lee"),
        ("Priya here", True, "Priya"),
        ("it's Garcia", False, None),
        ("I am looking for a flat", True, None),
        ("tomorrow", True, None),
        ("call me on +1 555 123 4567", False, None),
    ],
)
def test_person_name(text: str, loose: bool, name: str | None) -> None:
    assert find_person_name(normalize(text), loose=loose) == name
