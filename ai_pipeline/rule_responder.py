"""The offline conversation: a small, data-driven rule responder for a restaurant line.

No model and no network: a table of intents (regular expressions over normalised
text) and reply templates. It answers opening hours, takes a table booking (party
size, day and time, asked for until all three are known), hands the caller to a
manager on request or after repeated misunderstandings, and says goodbye.

Matching works on lowercase text with punctuation removed, so "What time do you
open?" and "what time do you open" are the same, and the patterns also accept a few
typical recogniser slips ("your ours", "manger", "table for for").

Per-call memory lives in ``ctx.state`` under ``rule.*`` keys, so one instance serves
many calls at once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Final

from ai_pipeline.responder import (
    ConversationContext,
    HangupAction,
    ResponseItem,
    SayText,
    TransferAction,
    TransferTarget,
    UserTurn,
)

__all__ = ["DEFAULT_TRANSFER_TARGET", "RuleBasedResponder", "normalize"]

DEFAULT_TRANSFER_TARGET: Final = TransferTarget(phone_number="+15555550100")
"""Where callers go when no transfer target is configured (a reserved 555 number)."""

_MISSES: Final = "rule.misses"
_BOOKING: Final = "rule.booking"
_OFFER: Final = "rule.offer"

# fmt: off
_COUNTS: Final = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
)
# fmt: on
_NUMBER_WORDS: Final = {word: n for n, word in enumerate(_COUNTS)}
# Recognisers often write a spoken number as its homophone ("a table for for").
# Only trusted right after "table for" / "party of", where nothing else fits.
_HOMOPHONES: Final = {"to": 2, "too": 2, "for": 4, "ate": 8}
_WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DTMF_NAMES: Final = {"*": "star", "#": "pound"}

_NUM = r"\d{1,2}|" + "|".join(_NUMBER_WORDS)
_HOMO = "|".join(_HOMOPHONES)
_HOUR = r"\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
_MINUTE = r"\d{2}|fifteen|thirty|forty five|oh five"
_MINUTE_WORDS: Final = {"fifteen": 15, "thirty": 30, "forty five": 45, "oh five": 5}


def _compile(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# The intent table, checked in this order: a caller who says "no, get me a manager,
# bye" wants the manager. Patterns run on `normalize`d text.
_INTENTS: Final = {
    "transfer": _compile(
        r"\b(?:manager|managers|manger|supervisor|owner)\b",
        r"\b(?:human|humans|human being|operator|agent|receptionist)\b",
        r"\b(?:representative|representitive|represent ative|rep)\b",
        r"\b(?:real|live|actual|another|a) (?:person|human)\b",
        r"\b(?:speak|talk|speaking|talking) (?:to|with) (?:someone|somebody|staff|a member)\b",
    ),
    "goodbye": _compile(
        r"\b(?:good ?)?bye\b",
        r"\bgood by\b",
        r"\bthank(?:s| you) by\b",
        r"\b(?:thats|that is|thatll be|that will be) all\b",
        r"\bhave a (?:good|nice|great|lovely) (?:day|night|evening|one)\b",
        r"\bnothing else\b",
        r"\bhang up\b",
    ),
    "booking": _compile(
        r"\b(?:book|booking|look|get|make|need|want|reserve) (?:a |an |the )?(?:table|tabel)\b",
        r"\b(?:p?reservation|reservations|reserve|resevation)\b",
        r"\b(?:table|tabel) for\b",
        r"\bbookings?\b",
        r"\b(?:party|group) of\b",
    ),
    "hours": _compile(
        r"\bhours\b",
        r"\b(?:your|the|opening) ours\b",
        r"\b(?:opening|closing|business) times?\b",
        r"\bwhat time\b.*\b(?:open|opened|opening|close|closed|closing)\b",
        r"\bwhen\b.*\b(?:open|opened|opening|close|closed|closing)\b",
        r"\b(?:are|r) (?:you|u|ya) (?:open|opened)\b",
        r"\bhow late\b",
        r"\bopen (?:today|tomorrow|tonight|on)\b",
    ),
}
_YES: Final = re.compile(
    r"^(?:yes|yeah|yep|yup|sure|please|ok|okay|of course|definitely|absolutely|"
    r"i would|id like that|sounds good)\b"
)
_NO: Final = re.compile(r"^(?:no|nope|nah|not really|not now|nothing)\b")
_HELLO: Final = re.compile(r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening))\b")
_THANKS: Final = re.compile(r"^(?:thanks|thank you|thank u|cheers)(?: (?:so|very) much)?$")

_TIME_PATTERNS: Final = (
    re.compile(rf"\b({_HOUR})(?: ({_MINUTE}))? ?(a ?m|p ?m|oclock|o clock)\b"),
    re.compile(rf"\bat ({_HOUR})(?: ({_MINUTE}))?\b()"),
    re.compile(r"\b(noon|midday)\b()()"),
)
# Answering "what time?", a bare "seven thirty" is the time.
_LOOSE_TIME: Final = re.compile(
    rf"\b({_HOUR})(?: ({_MINUTE}))?\b(?! (?:people|persons|person|guests|adults|of us)\b)()"
)
_CANCEL: Final = re.compile(r"^(?:no|nope|nah)\b|\b(?:cancel|never ?mind|forget it)\b")
_DAY: Final = re.compile(
    r"\b(today|tonight|tomorrow|to morrow|tomorow|(?:next |this )?(?:"
    + "|".join(_WEEKDAYS)
    + r"|wensday))\b"
)
_PARTY_PATTERNS: Final = (
    re.compile(rf"\b(?:party|group|table|tabel|booking|reservation) (?:of|for) ({_NUM}|{_HOMO})\b"),
    re.compile(rf"\b({_NUM}) (?:people|persons|person|guests|adults|of us)\b"),
    re.compile(rf"\bfor ({_HOMO}) (?:people|persons|guests|adults)\b"),
    re.compile(rf"\bfor ({_NUM})\b"),
)
_ANY_NUMBER: Final = re.compile(rf"\b({_NUM})\b")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+")


def normalize(text: str) -> str:
    """Lowercase, drop apostrophes, turn other punctuation into spaces, squeeze spaces.

    ``"That's all, thanks!"`` becomes ``"thats all thanks"``; ``"7 p.m."`` becomes
    ``"7 p m"``.
    """
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _number(word: str) -> int:
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word, _HOMOPHONES.get(word, 0))


def _spoken_count(n: int) -> str:
    return _COUNTS[n] if 0 <= n < len(_COUNTS) else str(n)


@dataclass
class _Booking:
    """The slots of a table booking in progress."""

    party: int | None = None
    day: str | None = None
    time: str | None = None

    def missing(self) -> list[str]:
        return [
            label
            for label, value in (
                ("how many people", self.party),
                ("what day", self.day),
                ("what time", self.time),
            )
            if value is None
        ]

    def describe(self) -> str:
        words = ["a table"]
        if self.party is not None:
            words.append(f"for {_spoken_count(self.party)}")
        if self.day is not None:
            words.append(self.day)
        if self.time is not None:
            words.append(f"at {self.time}")
        return " ".join(words)


def _extract_time(text: str, loose: bool) -> tuple[str | None, str]:
    """The first time of day in ``text``, rendered for speech, and the text without it."""
    for pattern in (*_TIME_PATTERNS, _LOOSE_TIME) if loose else _TIME_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        hour_word, minute_word, meridiem = match.groups()
        rest = text[: match.start()] + " " + text[match.end() :]
        if hour_word in ("noon", "midday"):
            return "12 PM", rest
        hour = _number(hour_word)
        if not minute_word:
            minute = 0
        else:
            minute = int(minute_word) if minute_word.isdigit() else _MINUTE_WORDS[minute_word]
        if hour > 23 or minute > 59:
            continue
        if meridiem and meridiem.replace(" ", "") == "am":
            suffix = "AM"
        elif hour >= 13:
            hour, suffix = hour - 12, "PM"
        elif hour == 0:
            hour, suffix = 12, "AM"
        else:
            # No am/pm: a restaurant booking "at seven" means the evening.
            suffix = "PM"
        clock = f"{hour}:{minute:02d}" if minute else str(hour)
        return f"{clock} {suffix}", rest
    return None, text


def _extract_day(text: str) -> str | None:
    match = _DAY.search(text)
    if match is None:
        return None
    day = match.group(1)
    if day in ("to morrow", "tomorow"):
        return "tomorrow"
    if day in ("today", "tonight", "tomorrow"):
        return day
    prefix, _, name = day.rpartition(" ")
    name = "wednesday" if name == "wensday" else name
    return f"{prefix} {name.capitalize()}" if prefix == "next" else f"on {name.capitalize()}"


def _extract_party(text: str, loose: bool) -> int | None:
    patterns = list(_PARTY_PATTERNS)
    if loose:
        # Answering "how many people?", a bare "six" or "make it 6" is the party size.
        patterns.append(_ANY_NUMBER)
    for pattern in patterns:
        for match in pattern.finditer(text):
            n = _number(match.group(1))
            if 1 <= n <= 20:
                return n
    return None


def _sentences(*texts: str, cacheable: bool = True) -> list[ResponseItem]:
    """One `SayText` per sentence, so speech can start on the first one."""
    return [
        SayText(part, cacheable=cacheable)
        for text in texts
        for part in _SENTENCE_END.split(text.strip())
        if part
    ]


class RuleBasedResponder:
    """The offline responder: intents by pattern, replies from templates.

    Satisfies `ai_pipeline.responder.Responder`. Stateless itself; each call's memory
    (misunderstandings in a row, a booking in progress, a pending yes/no question) is
    kept in ``ctx.state``.
    """

    def __init__(
        self,
        *,
        business_name: str = "Bella Vista",
        transfer_target: TransferTarget = DEFAULT_TRANSFER_TARGET,
        opening_hours: str = (
            "We're open Tuesday to Sunday, from 5 PM to 10 PM, "
            "and until 11 PM on Fridays and Saturdays."
        ),
        max_misunderstandings: int = 3,
    ) -> None:
        """Configure the business the bot speaks for.

        Args:
            business_name: said in the greeting and the goodbye.
            transfer_target: where a caller who asks for a person is sent.
            opening_hours: one or more sentences read out when asked for the hours.
            max_misunderstandings: unrecognised turns in a row before handing over.
        """
        if max_misunderstandings < 1:
            raise ValueError("max_misunderstandings must be at least 1")
        self.business_name = business_name
        self.transfer_target = transfer_target
        self.opening_hours = opening_hours
        self.max_misunderstandings = max_misunderstandings

    def greeting(self, ctx: ConversationContext) -> str:
        """``greeting_text`` from the start parameters, else a greeting naming the business.

        A ``customer_name`` parameter personalises the default greeting.
        """
        custom = ctx.custom_parameters.get("greeting_text", "").strip()
        if custom:
            return custom
        name = ctx.custom_parameters.get("customer_name", "").strip()
        hello = f"Hi {name}, thank you" if name else "Thank you"
        return f"{hello} for calling {self.business_name}. How can I help you today?"

    async def respond(
        self, turn: UserTurn, ctx: ConversationContext
    ) -> AsyncGenerator[ResponseItem, None]:
        """Answer one turn: one `SayText` per sentence, then at most one action.

        The whole reply is decided (and ``ctx.state`` updated) before the first item
        is yielded, so cancelling the iteration on barge-in leaves consistent state.
        """
        for item in self._plan(turn, ctx):
            yield item

    # --- decision ------------------------------------------------------------------

    def _plan(self, turn: UserTurn, ctx: ConversationContext) -> list[ResponseItem]:
        offer = ctx.state.pop(_OFFER, None)
        if turn.dtmf is not None:
            ctx.state[_MISSES] = 0
            if turn.dtmf == "0":
                return self._transfer(ctx)
            spoken = _DTMF_NAMES.get(turn.dtmf, turn.dtmf)
            return _sentences(f"You pressed {spoken}. To speak with a manager, press 0.")
        text = normalize(turn.text)
        items = self._understand(text, offer, ctx)
        if items is None:
            return self._misunderstood(text, ctx)
        ctx.state[_MISSES] = 0
        return items

    def _understand(
        self, text: str, offer: object, ctx: ConversationContext
    ) -> list[ResponseItem] | None:
        if not text:
            return None
        if _INTENTS["transfer"].search(text):
            return self._transfer(ctx)
        if _INTENTS["goodbye"].search(text):
            return self._goodbye(ctx)
        wants_booking = _INTENTS["booking"].search(text) is not None
        if _INTENTS["hours"].search(text):
            if wants_booking or _booking_in_progress(ctx):
                return _sentences(self.opening_hours) + self._book(text, ctx)
            ctx.state[_OFFER] = "booking"
            return _sentences(self.opening_hours, "Would you like to book a table?")
        if wants_booking or (offer == "booking" and _YES.search(text)):
            return self._book(text, ctx)
        if _booking_in_progress(ctx):
            if self._fill(text, ctx, loose=True):
                return self._book("", ctx)
            if _CANCEL.search(text):
                del ctx.state[_BOOKING]
                return self._anything_else("No problem, I won't book anything.", ctx)
        if offer is not None and _NO.search(text):
            if offer == "anything_else":
                return self._goodbye(ctx)
            return self._anything_else("No problem.", ctx)
        if offer == "anything_else" and _YES.search(text):
            return _sentences("Of course. What can I help you with?")
        if _THANKS.search(text):
            return self._anything_else("You're welcome!", ctx)
        if _HELLO.search(text):
            return _sentences("Hello! How can I help you today?")
        return None

    def _fill(self, text: str, ctx: ConversationContext, loose: bool) -> bool:
        """Put any booking details found in ``text`` into the booking; True if any."""
        booking = _booking(ctx)
        # A bare number answers whichever of party size and time we are asking for:
        # the party first, as the question lists it.
        awaiting_time = booking.party is not None and booking.time is None
        time, rest = _extract_time(text, loose=loose and awaiting_time)
        day = _extract_day(rest)
        party = _extract_party(rest, loose=loose and booking.party is None)
        booking.time = time or booking.time
        booking.day = day or booking.day
        booking.party = party or booking.party
        return any(found is not None for found in (time, day, party))

    def _book(self, text: str, ctx: ConversationContext) -> list[ResponseItem]:
        fresh = not _booking_in_progress(ctx)
        self._fill(text, ctx, loose=False)
        booking = _booking(ctx)
        missing = booking.missing()
        if not missing:
            del ctx.state[_BOOKING]
            ctx.state[_OFFER] = "anything_else"
            return [
                *_sentences(f"Perfect, I've booked {booking.describe()}.", cacheable=False),
                *_sentences("Is there anything else I can help you with?"),
            ]
        question = _ask_for(missing)
        if len(missing) == 3:
            return _sentences("I'd be happy to book a table for you.", question)
        lead = "Great" if fresh else "Got it"
        return _sentences(f"{lead}, {booking.describe()}.", question, cacheable=False)

    def _misunderstood(self, text: str, ctx: ConversationContext) -> list[ResponseItem]:
        misses = ctx.state.get(_MISSES, 0)
        misses = (misses if isinstance(misses, int) else 0) + 1
        if misses >= self.max_misunderstandings:
            ctx.state[_MISSES] = 0
            ctx.state.pop(_BOOKING, None)
            return [
                *_sentences(
                    "I'm sorry, I'm having trouble understanding.",
                    "Let me transfer you to someone who can help.",
                ),
                TransferAction(self.transfer_target),
            ]
        ctx.state[_MISSES] = misses
        sorry = "Sorry, I didn't catch that." if not text else "Sorry, I didn't quite understand."
        if _booking_in_progress(ctx):
            return _sentences(sorry, _ask_for(_booking(ctx).missing()))
        return _sentences(sorry, "I can tell you our opening hours or book a table for you.")

    def _transfer(self, ctx: ConversationContext) -> list[ResponseItem]:
        ctx.state.pop(_BOOKING, None)
        return [
            *_sentences("Of course, let me transfer you to a manager now."),
            TransferAction(self.transfer_target),
        ]

    def _goodbye(self, ctx: ConversationContext) -> list[ResponseItem]:
        ctx.state.pop(_BOOKING, None)
        return [
            *_sentences(f"Thank you for calling {self.business_name}. Have a wonderful day!"),
            HangupAction("completed"),
        ]

    def _anything_else(self, lead: str, ctx: ConversationContext) -> list[ResponseItem]:
        ctx.state[_OFFER] = "anything_else"
        return _sentences(lead, "Is there anything else I can help you with?")


def _booking_in_progress(ctx: ConversationContext) -> bool:
    return isinstance(ctx.state.get(_BOOKING), _Booking)


def _booking(ctx: ConversationContext) -> _Booking:
    booking = ctx.state.get(_BOOKING)
    if not isinstance(booking, _Booking):
        booking = _Booking()
        ctx.state[_BOOKING] = booking
    return booking


def _ask_for(missing: Iterable[str]) -> str:
    parts = list(missing)
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Could you tell me {joined}?"
