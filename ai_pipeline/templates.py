"""Response templates: `str.format` lines with spoken formatting, variants and caching.

A template is a tuple of variants. Each call rotates through them (the first use says
variant 0, a repeat of the same question says variant 1, ...), skipping any variant
that names a field with no value on this call, so a flow can offer "Hi {lead_name},
..." with a plain "Hi, ..." behind it.

Fields are parameters (custom parameters over the flow's defaults), slots (said the
way their type is spoken: "Saturday, June 14th", "7:30 PM", "80 lakhs") and a few
built-ins. A format spec picks another spoken form:

==========  ==============================================================
``inr``      an amount in rupees: ``{budget:inr}`` with 8000000 → "80 lakhs"
``money``    an amount in its own currency ("500 dollars")
``date``     a date in full ("Saturday, June 14th")
``relative`` a date as "today" / "tomorrow" / in full
``weekday``  a date's weekday ("Saturday")
``time``     a time of day ("7:30 PM")
``digits``   digits one by one ("9 8 7 ...") for phone numbers
==========  ==============================================================

A rendered line is cacheable (its audio kept for other calls) when every field it
used had the flow's default value: the same words are then said on every call.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import string
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ai_pipeline.nlp.dates import speak_date, speak_time
from ai_pipeline.nlp.money import find_money, speak_money
from ai_pipeline.nlp.normalize import prepare
from ai_pipeline.nlp.numbers import digitize
from ai_pipeline.text_split import split_sentences

__all__ = [
    "FORMAT_SPECS",
    "FieldValue",
    "Rendered",
    "render",
    "sentences",
    "template_fields",
]

FORMAT_SPECS: Final = frozenset(
    {"", "inr", "money", "date", "relative", "weekday", "time", "digits"}
)

_FORMATTER: Final = string.Formatter()
_SPACE_BEFORE_PUNCT: Final = re.compile(r"\s+([,.!?;:])")
_SPACES: Final = re.compile(r"\s{2,}")
# Only split at sentence ends: template sentences are short and written to be said whole.
_NO_CLAUSE_SPLIT: Final = 10_000


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A value a template field can take on this call.

    Attributes:
        text: how it is said by default (empty: no value).
        raw: the underlying value, for format specs (ISO date, amount, ...).
        fixed: the same on every call (a parameter at its flow default).
        today: the caller's today, for the ``relative`` spec.
    """

    text: str
    raw: object = None
    fixed: bool = False
    today: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered template.

    Attributes:
        text: the line.
        cacheable: the same text on every call (no per-call values in it).
    """

    text: str
    cacheable: bool


@functools.lru_cache(maxsize=4096)
def template_fields(template: str) -> tuple[tuple[str, str], ...]:
    """The (field name, format spec) pairs of a template string.

    Raises:
        ValueError: the template is not valid `str.format` syntax.
    """
    fields: list[tuple[str, str]] = []
    for _, name, spec, _conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not root or root.isdigit():
            raise ValueError(f"field {{{name}}} must be a name")
        fields.append((root, spec or ""))
    return tuple(fields)


def _amount(raw: object) -> tuple[Decimal, str | None] | None:
    if isinstance(raw, dict):
        try:
            return Decimal(str(raw.get("amount"))), raw.get("currency")
        except ArithmeticError:
            return None
    digitized = digitize(prepare(str(raw)))
    money = find_money(digitized)
    if money:
        return money[0].amount, money[0].currency
    if digitized.numbers:
        return digitized.numbers[0].value, None
    return None


def _as_date(raw: object) -> dt.date | None:
    if isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw))
    except ValueError:
        return None


def _spoken(value: FieldValue, spec: str) -> str:
    """The field said according to ``spec``; the default text if the spec cannot apply."""
    if not spec or not value.text:
        return value.text
    if spec in ("inr", "money"):
        amount = _amount(value.raw if value.raw is not None else value.text)
        if amount is None:
            return value.text
        return speak_money(amount[0], "INR" if spec == "inr" else amount[1])
    if spec in ("date", "relative", "weekday"):
        day = _as_date(value.raw if value.raw is not None else value.text)
        if day is None:
            return value.text
        if spec == "weekday":
            return day.strftime("%A")
        return speak_date(day, value.today if spec == "relative" else None)
    if spec == "time":
        try:
            return speak_time(dt.time.fromisoformat(str(value.raw or value.text)))
        except ValueError:
            return value.text
    if spec == "digits":
        return " ".join(ch for ch in value.text if ch.isdigit())
    return value.text


def _usable(variant: str, values: Mapping[str, FieldValue]) -> bool:
    return all(
        (field := values.get(name)) is not None and field.text.strip()
        for name, _ in template_fields(variant)
    )


def _fill(variant: str, values: Mapping[str, FieldValue]) -> Rendered:
    parts: list[str] = []
    fixed = True
    for literal, name, spec, _conversion in _FORMATTER.parse(variant):
        parts.append(literal)
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        value = values.get(root, FieldValue(""))
        fixed = fixed and value.fixed
        parts.append(_spoken(value, spec or ""))
    text = "".join(parts)
    text = _SPACES.sub(" ", _SPACE_BEFORE_PUNCT.sub(r"\1", text)).strip()
    return Rendered(text, fixed)


def render(
    variants: tuple[str, ...],
    values: Mapping[str, FieldValue],
    rotation: MutableMapping[str, int],
    key: str,
) -> Rendered | None:
    """Render one template, rotating through its variants.

    Args:
        variants: the template.
        values: the fields' values on this call.
        rotation: per-call counters (kept in the call's state).
        key: the template's identity for the counter (e.g. ``stage.intro.prompt``).

    Returns:
        The rendered line, or None for an empty template.
    """
    if not variants:
        return None
    turn = rotation.get(key, 0)
    rotation[key] = turn + 1
    count = len(variants)
    for offset in range(count):
        variant = variants[(turn + offset) % count]
        if _usable(variant, values):
            return _fill(variant, values)
    # No variant has all its values: say the current one with the gaps closed up.
    return _fill(variants[turn % count], values)


def sentences(text: str) -> list[str]:
    """Split a rendered line into sentences (one `SayText` each)."""
    return split_sentences(text, max_clause_chars=_NO_CLAUSE_SPLIT, max_chars=_NO_CLAUSE_SPLIT)
