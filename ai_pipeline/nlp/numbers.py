"""Numbers as people say them and recognisers write them, turned into digits.

``digitize`` rewrites a prepared transcript (see `ai_pipeline.nlp.normalize.prepare`)
with every number in digits and returns where each one is:

- cardinals: ``"twenty two"`` → ``22``, ``"two hundred and five"`` → ``205``,
  ``"five thousand"`` → ``5000``, ``"a hundred"`` → ``100``;
- digit strings read one by one: ``"four five six"`` → ``456``, ``"nine oh two"`` →
  ``902``, ``"double five"`` → ``55``;
- decimals: ``"one point five"`` → ``1.5``, ``"two and a half"`` → ``2.5``;
- ordinals: ``"twenty first"`` → ``21st``, ``"15th"`` stays;
- digits with grouping: ``"50,000"`` / ``"1,50,000"`` → ``50000`` / ``150000``,
  ``"50k"`` → ``50000``.

Large scales (lakh, crore, million, billion, grand) keep their word in the text
(``"eighty lakhs"`` → ``"80 lakhs"``) so a transcript and its reference normalise
the same way whichever form each used, and so money detection still sees the word;
the number's value applies the scale (8,000,000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from ai_pipeline.nlp.normalize import prepare

__all__ = [
    "Digitized",
    "NumberKind",
    "SpokenNumber",
    "digitize",
    "format_decimal",
    "normalize_numbers",
]

NumberKind = Literal["cardinal", "digits", "sequence", "ordinal"]

# fmt: off
_UNITS: Final = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9,
}
_TEENS: Final = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS: Final = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}
_ORD_UNITS: Final = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9,
}
_ORD_OTHER: Final = {
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}
# Scales that keep their word in the digitized text.
_BIG: Final = {
    "lakh": 10**5, "lakhs": 10**5, "lac": 10**5, "lacs": 10**5, "crore": 10**7,
    "crores": 10**7, "million": 10**6, "millions": 10**6, "billion": 10**9,
    "billions": 10**9, "grand": 1000,
}
# fmt: on
# fmt: off
_SCALE_NAMES: Final = {
    "lakhs": "lakh", "lac": "lakh", "lacs": "lakh", "crores": "crore", "millions": "million",
    "billions": "billion",
}
# fmt: on
_A_FOLLOWERS: Final = frozenset({"hundred", "thousand", *_BIG})
_BEFORE_THOUSAND: Final = frozenset({"unit", "teen", "ten", "hundred", "digits", "a", "half"})
_ZERO_WORDS: Final = frozenset({"oh", "o", "zero"})
_REPEATS: Final = {"double": 2, "triple": 3}

_TOKEN: Final = re.compile(
    r"(?P<clock>\d{1,2}:\d{2})"
    r"|(?P<ord>\d+)(?:st|nd|rd|th)(?![a-z])"
    r"|(?P<num>\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<k>k(?![a-z]))?"
    r"|(?P<word>[a-z]+)"
    r"|(?P<sym>\S)"
)


@dataclass(frozen=True, slots=True)
class SpokenNumber:
    """One number found in a transcript.

    Attributes:
        value: the number (scales applied: ``"80 lakhs"`` is 8,000,000).
        start: where it starts in `Digitized.text`.
        end: where it ends in `Digitized.text`.
        kind: ``cardinal`` (words), ``digits`` (written in digits), ``sequence``
            (digits read one by one), ``ordinal``.
        scale: the large-scale word it used, if any (``lakh``, ``crore``, ``million``,
            ``billion``, ``grand``, ``k``).
        text: how it reads in `Digitized.text`.
    """

    value: Decimal
    start: int
    end: int
    kind: NumberKind
    scale: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Digitized:
    """A transcript with its numbers in digits, and where each number is.

    Attributes:
        text: the rewritten text.
        numbers: the numbers in order of appearance.
    """

    text: str
    numbers: tuple[SpokenNumber, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int
    value: Decimal | None = None


@dataclass(frozen=True, slots=True)
class _Parsed:
    end_index: int
    value: Decimal
    kind: NumberKind
    scale: str | None
    text: str


def format_decimal(value: Decimal) -> str:
    """``Decimal("8000000")`` → ``"8000000"``, ``Decimal("1.50")`` → ``"1.5"``."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if match.group("ord") is not None:
            tokens.append(
                _Token("ord", match.group(), match.start(), match.end(), Decimal(match["ord"]))
            )
        elif match.group("num") is not None:
            value = Decimal(match["num"].replace(",", ""))
            if match.group("k"):
                tokens.append(_Token("k", match.group(), match.start(), match.end(), value * 1000))
            else:
                tokens.append(_Token("num", match.group(), match.start(), match.end(), value))
        else:
            assert kind is not None
            tokens.append(_Token(kind, match.group(), match.start(), match.end()))
    return tokens


def _word(tokens: list[_Token], i: int) -> str | None:
    if 0 <= i < len(tokens) and tokens[i].kind == "word":
        return tokens[i].text
    return None


def _is_number_word(word: str | None) -> bool:
    return word is not None and (word in _UNITS or word in _TEENS or word in _TENS)


def _sequence(tokens: list[_Token], i: int) -> _Parsed | None:
    """Digits read one at a time: "four five six", "nine oh two", "double five"."""
    digits = ""
    j = i
    while j < len(tokens):
        word = _word(tokens, j)
        if word in _UNITS:
            digits += str(_UNITS[word])
            j += 1
        elif word in _ZERO_WORDS and digits and _word(tokens, j + 1) in (*_UNITS, *_ZERO_WORDS):
            digits += "0"
            j += 1
        elif word in _REPEATS and _word(tokens, j + 1) in _UNITS:
            digits += str(_UNITS[_word(tokens, j + 1) or ""]) * _REPEATS[word]
            j += 2
        else:
            break
    if len(digits) < 2:
        return None
    follower = _word(tokens, j)
    if follower in ("hundred", "thousand", "point") or follower in _BIG:
        return None
    if follower == "and" and _word(tokens, j + 1) == "a" and _word(tokens, j + 2) == "half":
        return None
    return _Parsed(j, Decimal(digits), "sequence", None, digits)


def _ordinal(tokens: list[_Token], i: int) -> _Parsed | None:
    token = tokens[i]
    if token.kind == "ord" and token.value is not None:
        return _Parsed(i + 1, token.value, "ordinal", None, token.text)
    word = _word(tokens, i)
    value: int | None = None
    end = i + 1
    if word in _ORD_UNITS:
        value = _ORD_UNITS[word]
    elif word in _ORD_OTHER:
        value = _ORD_OTHER[word]
    elif word in _TENS and _word(tokens, i + 1) in _ORD_UNITS:
        value = _TENS[word] + _ORD_UNITS[_word(tokens, i + 1) or ""]
        end = i + 2
    if value is None:
        return None
    suffix = "th" if 10 <= value % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
    return _Parsed(end, Decimal(value), "ordinal", None, f"{value}{suffix}")


def _fraction(tokens: list[_Token], j: int) -> tuple[int, Decimal] | None:
    """Digits after "point": "point five" / "point 2 5" → (next index, 0.5 / 0.25)."""
    digits = ""
    while j < len(tokens):
        word = _word(tokens, j)
        token = tokens[j]
        if word in _UNITS:
            digits += str(_UNITS[word])
        elif word in _ZERO_WORDS and word != "o":
            digits += "0"
        elif token.kind == "num" and token.text.isdigit():
            digits += token.text
        else:
            break
        j += 1
    if not digits:
        return None
    return j, Decimal("0." + digits)


class _Cardinal:
    """Accumulates one cardinal number word by word; refuses words that cannot continue."""

    def __init__(self) -> None:
        self.big_groups: list[tuple[Decimal, str]] = []
        self.total = Decimal(0)  # sum of large-scale groups
        self.chunk = Decimal(0)  # thousands below the large scale
        self.small = Decimal(0)  # below a thousand
        self.last: str | None = None
        self.scale: str | None = None
        self.words = 0

    @property
    def value(self) -> Decimal:
        return self.total + self.chunk + self.small

    def render(self) -> str:
        parts = [f"{format_decimal(coef)} {word}" for coef, word in self.big_groups]
        rest = self.chunk + self.small
        if rest or not parts:
            parts.append(format_decimal(rest))
        return " ".join(parts)

    def take(self, tokens: list[_Token], j: int) -> int | None:
        """Consume the token(s) at ``j`` if they continue the number; the next index."""
        token = tokens[j]
        last = self.last
        after_scale = last in (None, "hundred", "thousand", "big", "and")
        if token.kind in ("num", "k") and last is None and token.value is not None:
            self.small = token.value
            self.last = "digits"
            if token.kind == "k":
                self.scale, self.last = "k", "big"
            return j + 1
        word = _word(tokens, j)
        if word is None:
            return None
        if word in _UNITS and (after_scale or (last == "ten" and self.small % 10 == 0)):
            self.small += _UNITS[word]
            self.last = "unit"
        elif word in _TEENS and after_scale:
            self.small += _TEENS[word]
            self.last = "teen"
        elif word in _TENS and after_scale:
            self.small += _TENS[word]
            self.last = "ten"
        elif word == "a" and last is None and _word(tokens, j + 1) in _A_FOLLOWERS:
            self.small = Decimal(1)
            self.last = "a"
        elif word == "half" and last is None and _word(tokens, j + 1) == "a":
            if _word(tokens, j + 2) not in _BIG:
                return None
            self.small = Decimal("0.5")
            self.last = "a"
            return j + 2
        elif word == "hundred" and last in ("unit", "teen", "digits", "a") and 0 < self.small < 100:
            self.small *= 100
            self.last = "hundred"
        elif word == "thousand" and last in _BEFORE_THOUSAND:
            self.chunk += self.small * 1000
            self.small = Decimal(0)
            self.last = "thousand"
        elif word in _BIG and last in ("unit", "teen", "ten", "hundred", "thousand", "digits", "a",
                                       "half", "point"):  # fmt: skip
            coef = self.chunk + self.small
            self.total += coef * _BIG[word]
            self.big_groups.append((coef, word))
            self.chunk = self.small = Decimal(0)
            self.scale = _SCALE_NAMES.get(word, word)
            self.last = "big"
        elif (
            word == "and"
            and last in ("hundred", "thousand", "big")
            and _is_number_word(_word(tokens, j + 1))
        ):
            self.last = "and"
        elif (
            word == "and"
            and last in ("unit", "teen", "ten", "digits")
            and _word(tokens, j + 1) == "a"
            and _word(tokens, j + 2) == "half"
        ):
            self.small += Decimal("0.5")
            self.last = "half"
            return j + 3
        elif word == "point" and last in ("unit", "teen", "ten", "digits") and self.small % 1 == 0:
            fraction = _fraction(tokens, j + 1)
            if fraction is None:
                return None
            self.small += fraction[1]
            self.last = "point"
            return fraction[0]
        else:
            return None
        self.words += 1
        return j + 1


def _cardinal(tokens: list[_Token], i: int) -> _Parsed | None:
    number = _Cardinal()
    j = i
    while j < len(tokens):
        nxt = number.take(tokens, j)
        if nxt is None:
            break
        j = nxt
    if number.last is None or number.last == "a":
        return None
    if number.words == 0 and number.scale is None:
        token = tokens[i]
        assert token.value is not None
        return _Parsed(j, token.value, "digits", None, format_decimal(token.value))
    return _Parsed(j, number.value, "cardinal", number.scale, number.render())


def digitize(text: str) -> Digitized:
    """Rewrite the numbers in ``text`` as digits and say where each one is.

    Args:
        text: a prepared transcript (lowercase; see `prepare`). Clock times such as
            ``7:30`` are left alone for the time parser.

    Returns:
        The rewritten text and its numbers.
    """
    tokens = _tokenize(text)
    out: list[str] = []
    numbers: list[SpokenNumber] = []
    pos = 0
    length = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind in ("word", "num", "k", "ord"):
            parsed = _sequence(tokens, i) or _ordinal(tokens, i) or _cardinal(tokens, i)
        else:
            parsed = None
        if parsed is None:
            i += 1
            continue
        start, end = token.start, tokens[parsed.end_index - 1].end
        gap = text[pos:start]
        out.append(gap)
        length += len(gap)
        out.append(parsed.text)
        value = parsed.value
        if value == value.to_integral_value():
            value = Decimal(int(value))  # "1.5 crore" is exactly 15000000, not 15000000.0
        numbers.append(
            SpokenNumber(
                value, length, length + len(parsed.text), parsed.kind, parsed.scale,
                parsed.text,
            )
        )  # fmt: skip
        length += len(parsed.text)
        pos = end
        i = parsed.end_index
    out.append(text[pos:])
    return Digitized("".join(out), tuple(numbers))


_LONE_DOT: Final = re.compile(r"(?<!\d)\.|\.(?!\d)")
_NOT_WORD_OR_DOT: Final = re.compile(r"[^a-z0-9.]+")


def normalize_numbers(text: str) -> str:
    """Lowercase words with numbers in digits, for comparing transcripts.

    ``"Twenty-two people at seven thirty"`` → ``"22 people at 7 30"``;
    ``"four five six"`` → ``"456"``; ``"eighty lakhs"`` → ``"80 lakhs"``; ``"7:30"`` →
    ``"7 30"``.

    Args:
        text: any transcript.

    Returns:
        The normalised text.
    """
    digits = _LONE_DOT.sub(" ", digitize(prepare(text)).text)
    return " ".join(_NOT_WORD_OR_DOT.sub(" ", digits).split())
