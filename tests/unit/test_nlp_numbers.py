"""Spoken and written numbers into digits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ai_pipeline.nlp import digitize, normalize_numbers, prepare


@pytest.mark.parametrize(
    ("spoken", "value"),
    [
        ("twenty two", 22),
        ("twenty-two", 22),
        ("four five six", 456),
        ("nine oh two", 902),
        ("double five", 55),
        ("triple seven", 777),
        ("two hundred and five", 205),
        ("one hundred twenty five", 125),
        ("a hundred", 100),
        ("five thousand", 5000),
        ("twelve thousand three hundred", 12300),
        ("5 thousand", 5000),
        ("50,000", 50000),
        ("1,50,000", 150000),
        ("50k", 50000),
        ("eighty lakhs", 8_000_000),
        ("80 lakh", 8_000_000),
        ("1.5 crore", 15_000_000),
        ("one point five crore", 15_000_000),
        ("two and a half lakh", 250_000),
        ("one lakh fifty thousand", 150_000),
        ("half a million", 500_000),
        ("two million", 2_000_000),
        ("nineteen", 19),
        ("zero", 0),
    ],
)
def test_single_number(spoken: str, value: int) -> None:
    numbers = digitize(prepare(spoken)).numbers
    assert [n.value for n in numbers] == [Decimal(value)]


@pytest.mark.parametrize(
    ("spoken", "values"),
    [
        ("seven thirty", [7, 30]),  # not a number: a clock reading, left for the time parser
        ("nineteen ninety nine", [19, 99]),
        ("I have 3 kids and 2 dogs", [3, 2]),
        ("one point five", [Decimal("1.5")]),
        ("two and a half", [Decimal("2.5")]),
    ],
)
def test_several_numbers(spoken: str, values: list[Decimal | int]) -> None:
    assert [n.value for n in digitize(prepare(spoken)).numbers] == [Decimal(v) for v in values]


def test_ordinals_keep_their_suffix() -> None:
    digitized = digitize(prepare("the twenty first of March and the 3rd"))
    assert digitized.text == "the 21st of march and the 3rd"
    assert [(n.value, n.kind) for n in digitized.numbers] == [
        (Decimal(21), "ordinal"),
        (Decimal(3), "ordinal"),
    ]


def test_spans_point_into_the_rewritten_text() -> None:
    digitized = digitize(prepare("Budget is eighty lakhs, call me on nine eight seven"))
    assert digitized.text == "budget is 80 lakhs call me on 987"
    for number in digitized.numbers:
        assert digitized.text[number.start : number.end] == number.text
    assert [n.scale for n in digitized.numbers] == ["lakh", None]


def test_clock_times_are_left_alone() -> None:
    assert digitize(prepare("at 7:30 p.m.")).text == "at 7:30 pm"
    assert digitize(prepare("at 7:30 p.m.")).numbers == ()


def test_words_that_are_not_numbers_stay_words() -> None:
    assert digitize(prepare("a table for a couple")).text == "a table for a couple"


@pytest.mark.parametrize(
    ("reference", "heard"),
    [
        ("22 people", "twenty two people"),
        ("my pin is 456", "my pin is four five six"),
        ("Table for 4, at 7:30 p.m.", "table for four at seven thirty PM"),
        ("around 80 lakhs", "Around eighty lakhs."),
        ("1.5 crore", "one point five crore"),
        ("5,000", "five thousand"),
    ],
)
def test_normalize_numbers_makes_both_forms_equal(reference: str, heard: str) -> None:
    assert normalize_numbers(reference) == normalize_numbers(heard)
