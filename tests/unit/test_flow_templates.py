"""Template rendering: variants, missing values, spoken formats, cacheability."""

from __future__ import annotations

import datetime as dt

import pytest

from ai_pipeline.templates import FieldValue, render, sentences, template_fields

TODAY = dt.date(2025, 6, 11)


def values(**kw: str | FieldValue) -> dict[str, FieldValue]:
    return {k: v if isinstance(v, FieldValue) else FieldValue(v, v) for k, v in kw.items()}


def test_variants_rotate_within_a_call() -> None:
    rotation: dict[str, int] = {}
    template = ("First.", "Second.", "Third.")
    said = [render(template, {}, rotation, "k") for _ in range(4)]
    assert [r.text for r in said if r] == ["First.", "Second.", "Third.", "First."]


def test_a_variant_with_an_empty_field_is_skipped() -> None:
    template = ("Hi {name}, welcome back.", "Hi, welcome.")
    rendered = render(template, values(name="Ana"), {}, "k")
    assert rendered is not None and rendered.text == "Hi Ana, welcome back."
    rendered = render(template, values(name=""), {}, "k")
    assert rendered is not None and rendered.text == "Hi, welcome."


def test_when_no_variant_fits_the_gaps_close_up() -> None:
    rendered = render(("Hi {name}, how are you?",), values(name=""), {}, "k")
    assert rendered is not None and rendered.text == "Hi, how are you?"


@pytest.mark.parametrize(
    ("template", "field", "expected"),
    [
        ("{x:inr}", FieldValue("8000000", "8000000"), "80 lakhs"),
        ("{x:inr}", FieldValue("15000000", "15000000"), "1.5 crore"),
        ("{x:inr}", FieldValue("80 lakhs", "80 lakhs"), "80 lakhs"),
        ("{x:money}", FieldValue("x", {"amount": 500, "currency": "USD"}), "500 dollars"),
        ("{x:date}", FieldValue("x", "2025-06-14"), "Saturday, June 14th"),
        ("{x:relative}", FieldValue("x", "2025-06-12", today=TODAY), "tomorrow"),
        ("{x:weekday}", FieldValue("x", "2025-06-14"), "Saturday"),
        ("{x:time}", FieldValue("x", "19:30"), "7:30 PM"),
        ("{x:digits}", FieldValue("+1 555-0100", "+1 555-0100"), "1 5 5 5 0 1 0 0"),
        ("{x:inr}", FieldValue("not a number", "not a number"), "not a number"),
    ],
)
def test_format_specs(template: str, field: FieldValue, expected: str) -> None:
    rendered = render((template,), {"x": field}, {}, "k")
    assert rendered is not None and rendered.text == expected


def test_cacheable_only_when_every_field_is_fixed() -> None:
    fixed = {"business": FieldValue("Bella Vista", fixed=True)}
    per_call = {"business": FieldValue("Chez Ana")}
    cases = [(fixed, "Welcome to {business}."), (per_call, "Welcome to {business}."), ({}, "Hi.")]
    said = [render((template,), fields, {}, "k") for fields, template in cases]
    assert [r.cacheable if r else None for r in said] == [True, False, True]


def test_template_fields_and_sentences() -> None:
    assert template_fields("Hi {name}, {day:weekday}") == (("name", ""), ("day", "weekday"))
    with pytest.raises(ValueError):
        template_fields("Hi {0}")
    assert sentences("We open at 9 a.m. Dr. Lee is in. See you!") == [
        "We open at 9 a.m.",
        "Dr. Lee is in.",
        "See you!",
    ]
