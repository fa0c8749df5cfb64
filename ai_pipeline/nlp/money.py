"""Amounts of money: ``"80 lakhs"``, ``"$500"``, ``"five thousand dollars"``, ``"1.5 crore"``.

Works on the output of `digitize`: a number is money when a currency sign or word
sits right before or after it, or when it uses a scale only money uses here (lakh,
crore, "50k", "5 grand"). Lakh and crore imply rupees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ai_pipeline.nlp.numbers import Digitized, SpokenNumber, format_decimal

__all__ = ["Money", "find_money", "speak_money"]

_PREFIX: Final = re.compile(
    r"(?:(?P<sign>[$\u20b9\u20ac\u00a3])|\b(?P<word>usd|inr|rs|rupees|eur|gbp))\s?$"
)
_SUFFIX: Final = re.compile(
    r"^\s?(?:(?P<word>dollars?|bucks|usd|rupees?|rs|inr|euros?|eur|pounds?|gbp|quid)\b)"
)
_SIGNS: Final = {"$": "USD", "\u20b9": "INR", "\u20ac": "EUR", "\u00a3": "GBP"}
_WORDS: Final = {
    "usd": "USD", "dollar": "USD", "dollars": "USD", "bucks": "USD",
    "inr": "INR", "rs": "INR", "rupee": "INR", "rupees": "INR",
    "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP",
}  # fmt: skip
_MONEY_SCALES: Final = frozenset({"lakh", "crore", "k", "grand"})
_INDIAN_SCALES: Final = frozenset({"lakh", "crore"})


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of money mentioned by the caller.

    Attributes:
        amount: the amount in units of the currency (``80 lakhs`` → 8,000,000).
        currency: ISO code (``USD``, ``INR``, ``EUR``, ``GBP``) or None when only the
            scale said it was money (``"50k"``).
        text: the words it came from, digitized.
    """

    amount: Decimal
    currency: str | None
    text: str


def _currency(digitized: Digitized, number: SpokenNumber) -> tuple[str | None, bool]:
    """(currency, found a currency cue) for the number."""
    before = digitized.text[max(0, number.start - 8) : number.start]
    after = digitized.text[number.end : number.end + 10]
    prefix = _PREFIX.search(before)
    if prefix is not None:
        sign = prefix.group("sign")
        return (_SIGNS[sign] if sign else _WORDS[prefix.group("word")]), True
    suffix = _SUFFIX.search(after)
    if suffix is not None:
        return _WORDS[suffix.group("word")], True
    if number.scale in _INDIAN_SCALES:
        return "INR", True
    return None, number.scale in _MONEY_SCALES


def find_money(digitized: Digitized) -> tuple[Money, ...]:
    """Every amount of money in a digitized transcript, in order.

    Args:
        digitized: the transcript after `digitize`.

    Returns:
        The amounts found (possibly none).
    """
    found: list[Money] = []
    for number in digitized.numbers:
        if number.kind in ("ordinal", "sequence"):
            continue
        currency, is_money = _currency(digitized, number)
        if is_money:
            found.append(Money(number.value, currency, number.text))
    return tuple(found)


def speak_money(amount: Decimal, currency: str | None) -> str:
    """How the bot says an amount: ``80 lakhs``, ``1.5 crore``, ``500 dollars``.

    Rupee amounts of a lakh or more use lakh/crore as Indian speakers do; digits are
    left for the speech engine to read.

    Args:
        amount: the amount.
        currency: ISO code or None.

    Returns:
        Text for speech.
    """
    if currency == "INR":
        if amount >= 10**7:
            return f"{format_decimal(amount / 10**7)} crore"
        if amount >= 10**5:
            lakhs = amount / 10**5
            return f"{format_decimal(lakhs)} lakh" + ("s" if lakhs != 1 else "")
        return f"{format_decimal(amount)} rupees"
    unit = {"USD": "dollars", "EUR": "euros", "GBP": "pounds"}.get(currency or "", "")
    if unit and amount == 1:
        unit = unit[:-1]
    figure = format_decimal(amount)
    for scale, word in ((10**9, "billion"), (10**6, "million")):
        if amount >= scale:
            figure = f"{format_decimal(amount / scale)} {word}"
            break
    return f"{figure} {unit}".strip()
