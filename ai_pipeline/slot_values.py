"""Slot values: finding them in what the caller said, checking them, saying them back.

Values are stored JSON-ready so the call's outcome can be persisted as is: enum keys,
ints or floats, ``{"amount": ..., "currency": ...}`` for money, ISO dates
(``2025-06-14``), ``HH:MM`` times, digit strings for phones, plain strings for names
and text, booleans.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from ai_pipeline.flow_model import SlotSpec
from ai_pipeline.nlp.dates import find_times, parse_date, speak_date, speak_time
from ai_pipeline.nlp.entities import (
    Entities,
    extract_entities,
    find_party_size,
    find_person_name,
)
from ai_pipeline.nlp.money import speak_money
from ai_pipeline.nlp.normalize import normalize
from ai_pipeline.nlp.numbers import format_decimal

__all__ = [
    "Heard",
    "SlotFill",
    "SlotValue",
    "find_slot_value",
    "heard_from_text",
    "parse_slot_value",
    "speak_slot_value",
    "tool_property",
]

SlotValue = str | int | float | bool | dict[str, Any]

_NOT_WORD_OR_DOT: Final = re.compile(r"[^a-z0-9.]+")
_LONE_DOT: Final = re.compile(r"(?<!\d)\.|\.(?!\d)")


@dataclass(frozen=True, slots=True)
class Heard:
    """What slot finders look at in one utterance.

    Attributes:
        text: the transcript as recognised.
        normalized: lowercase words (`normalize`).
        numbered: lowercase words with numbers in digits ("3 months").
        entities: the extracted entities.
    """

    text: str
    normalized: str
    numbered: str
    entities: Entities

    @classmethod
    def of(cls, text: str, normalized: str, entities: Entities) -> Heard:
        """Build from an analysis' parts."""
        numbered = " ".join(
            _NOT_WORD_OR_DOT.sub(" ", _LONE_DOT.sub(" ", entities.digitized)).split()
        )
        return cls(text, normalized, numbered, entities)


def heard_from_text(text: str, today: dt.date) -> Heard:
    """Analyse a bit of text (a rule's literal value, a tool argument) for slot finding."""
    normalized = normalize(text)
    return Heard.of(text, normalized, extract_entities(text, today=today, normalized=normalized))


@dataclass(frozen=True, slots=True)
class SlotFill:
    """A value found for a slot.

    Attributes:
        slot: the slot's name.
        value: the value, or None when it was rejected.
        said: how the caller put it (for the invalid line and logs).
    """

    slot: str
    value: SlotValue | None
    said: str = ""

    @property
    def valid(self) -> bool:
        """The value passed the slot's checks."""
        return self.value is not None


def _number_value(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _in_range(spec: SlotSpec, value: Decimal) -> bool:
    if spec.minimum is not None and value < spec.minimum:
        return False
    return spec.maximum is None or value <= spec.maximum


def _find_enum(spec: SlotSpec, heard: Heard) -> SlotFill | None:
    # Values are tried in the order the flow lists them, so a specific value ("brake
    # service") listed before a general one ("service") wins when both are said.
    for value in spec.values:
        for pattern in value.patterns:
            if pattern.search(heard.normalized) or pattern.search(heard.numbered):
                return SlotFill(spec.name, value.key)
    return None


def _find_number(spec: SlotSpec, heard: Heard, asked: bool) -> SlotFill | None:
    entities = heard.entities
    found: Decimal | None = None
    if spec.entity == "party_size":
        size = entities.party_size
        if size is None and asked:
            size = find_party_size(entities.digitized, loose=True)
        found = Decimal(size) if size is not None else None
    elif asked and entities.numbers:
        found = entities.numbers[0]
    if found is None:
        return None
    if not _in_range(spec, found):
        return SlotFill(spec.name, None, format_decimal(found))
    return SlotFill(spec.name, _number_value(found))


def _find_money(spec: SlotSpec, heard: Heard, asked: bool) -> SlotFill | None:
    entities = heard.entities
    if entities.money:
        amount, currency = entities.money[0].amount, entities.money[0].currency
    elif asked and entities.numbers:
        amount, currency = entities.numbers[0], None
    else:
        return None
    currency = currency or spec.currency
    said = speak_money(amount, currency)
    if not _in_range(spec, amount):
        return SlotFill(spec.name, None, said)
    return SlotFill(spec.name, {"amount": _number_value(amount), "currency": currency})


def _check_date(spec: SlotSpec, day: dt.date, today: dt.date) -> SlotFill:
    said = speak_date(day, today)
    if spec.not_past and day < today:
        return SlotFill(spec.name, None, said)
    if spec.max_days_ahead is not None and (day - today).days > spec.max_days_ahead:
        return SlotFill(spec.name, None, said)
    if spec.weekdays is not None and day.weekday() not in spec.weekdays:
        return SlotFill(spec.name, None, said)
    return SlotFill(spec.name, day.isoformat())


def _find_date(spec: SlotSpec, heard: Heard, today: dt.date) -> SlotFill | None:
    if not heard.entities.dates:
        return None
    return _check_date(spec, heard.entities.dates[0].date, today)


def _time_ok(spec: SlotSpec, value: dt.time) -> bool:
    if spec.earliest is not None and value < spec.earliest:
        return False
    return spec.latest is None or value <= spec.latest


def _find_time(spec: SlotSpec, heard: Heard, asked: bool) -> SlotFill | None:
    entities = heard.entities
    times = entities.times or (find_times(entities.digitized, loose=True) if asked else ())
    if not times:
        part = entities.part_of_day
        if part is not None and part in spec.parts_of_day:
            chosen = spec.parts_of_day[part]
            return SlotFill(spec.name, chosen.strftime("%H:%M"))
        return None
    mention = times[0]
    candidates = [t for t in mention.candidates() if _time_ok(spec, t)]
    if not candidates:
        return SlotFill(spec.name, None, speak_time(mention.candidates()[-1]))
    if len(candidates) > 1 and spec.assume == "am":
        chosen = candidates[0]
    else:
        chosen = candidates[-1] if spec.assume == "pm" or len(candidates) == 1 else candidates[0]
    return SlotFill(spec.name, chosen.strftime("%H:%M"))


def find_slot_value(
    spec: SlotSpec, heard: Heard, *, asked: bool, today: dt.date
) -> SlotFill | None:
    """The value the caller gave for ``spec`` in this utterance, if any.

    Args:
        spec: the slot.
        heard: the utterance.
        asked: the bot just asked for this slot, so bare answers count ("six",
            "seven thirty", "Sam").
        today: the caller's today.

    Returns:
        None when nothing was said for the slot; else a fill, rejected (``value`` None)
        when it failed the slot's checks.
    """
    entities = heard.entities
    kind = spec.type
    if kind == "enum":
        return _find_enum(spec, heard)
    if kind == "number":
        return _find_number(spec, heard, asked)
    if kind == "money":
        return _find_money(spec, heard, asked)
    if kind == "date":
        return _find_date(spec, heard, today)
    if kind == "time":
        return _find_time(spec, heard, asked)
    if kind == "phone":
        return SlotFill(spec.name, entities.phone_numbers[0]) if entities.phone_numbers else None
    if kind == "name":
        name = entities.person_name or (
            find_person_name(heard.normalized, loose=True) if asked else None
        )
        if name is None or len(name.split()) > spec.max_words:
            return None
        return SlotFill(spec.name, name)
    if kind == "boolean":
        if not asked or entities.yes_no is None:
            return None
        return SlotFill(spec.name, entities.yes_no == "yes")
    # text: only as an answer to its question.
    text = " ".join(heard.text.split()).strip(" .,!?")
    if not asked or not text:
        return None
    return SlotFill(spec.name, text)


def parse_slot_value(spec: SlotSpec, raw: object, today: dt.date) -> SlotFill | None:
    """A slot value from a literal: a rule's ``set`` text or an LLM tool argument.

    Accepts what a caller could say ("this Saturday", "7 pm", "four") and the machine
    forms a model sends (``2025-06-14``, ``19:30``, ``4``, an enum key).

    Args:
        spec: the slot.
        raw: the literal.
        today: the caller's today.

    Returns:
        As `find_slot_value` (with ``asked`` true).
    """
    if isinstance(raw, bool) and spec.type == "boolean":
        return SlotFill(spec.name, raw)
    text = str(raw).strip()
    if not text:
        return None
    if spec.type == "enum":
        for value in spec.values:
            if text.lower() == value.key.lower():
                return SlotFill(spec.name, value.key)
    if spec.type == "date":
        day = parse_date(text, today)
        return _check_date(spec, day, today) if day is not None else None
    return find_slot_value(spec, heard_from_text(text, today), asked=True, today=today)


def speak_slot_value(spec: SlotSpec, value: SlotValue, today: dt.date | None = None) -> str:
    """How the bot says a stored value ("your family", "Saturday, June 14th", "7:30 PM").

    Args:
        spec: the slot.
        value: the stored value.
        today: when given, dates of today and tomorrow are said as such.

    Returns:
        Text for speech.
    """
    if spec.type == "enum":
        return next((v.say for v in spec.values if v.key == value), str(value))
    if spec.type == "money" and isinstance(value, dict):
        return speak_money(Decimal(str(value.get("amount", 0))), value.get("currency"))
    if spec.type == "date" and isinstance(value, str):
        try:
            return speak_date(dt.date.fromisoformat(value), today)
        except ValueError:
            return value
    if spec.type == "time" and isinstance(value, str):
        try:
            return speak_time(dt.time.fromisoformat(value))
        except ValueError:
            return value
    if spec.type == "phone" and isinstance(value, str):
        return " ".join(value.lstrip("+"))
    if spec.type == "boolean":
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_decimal(Decimal(str(value)))
    return str(value)


def tool_property(spec: SlotSpec) -> dict[str, Any]:
    """The JSON-schema property for the slot in an LLM tool's parameters."""
    hints = {
        "number": "a number",
        "money": "an amount, with its currency if known",
        "date": "a date as YYYY-MM-DD",
        "time": "a time of day as HH:MM (24-hour)",
        "phone": "a phone number, digits only",
        "text": "free text",
        "name": "a person's name",
    }
    description = spec.description or spec.name.replace("_", " ")
    if spec.type == "enum":
        return {
            "type": "string",
            "enum": [v.key for v in spec.values],
            "description": description,
        }
    if spec.type == "boolean":
        return {"type": "boolean", "description": description}
    if spec.type == "number":
        return {"type": "number", "description": f"{description} ({hints['number']})"}
    return {"type": "string", "description": f"{description} ({hints[spec.type]})"}
