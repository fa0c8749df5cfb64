"""Intent detection: weighted phrase patterns per intent, scored into a confidence.

An intent is a name and a list of regular expressions over `normalize`d text (lowercase,
no punctuation), each with a weight in (0, 1]. Every pattern that matches adds
evidence; the confidence is the "noisy or" of the weights that matched,
``1 - (1 - w1)(1 - w2)...``, so one strong phrase is enough and several weak cues add
up without ever passing 1. Patterns are wrapped in word boundaries, so ``"bye"`` does
not fire inside ``"byelaws"``. Misrecognitions are handled the plain way: the patterns
list the slips a recogniser makes ("manger", "your ours").

Ranking: intents at or above the set's ``min_confidence`` are ordered by priority, then
confidence. Priority says what wins when one utterance carries two intents: "no, get
me a manager" is a request for a person (priority 5) before it is a "no".

`COMMON_INTENTS` holds what every phone conversation needs (a person, goodbye, repeat,
thanks, greeting, wait, who are you, busy, not interested); a flow adds its own and may
replace any of these by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "COMMON_INTENTS",
    "DEFAULT_MIN_CONFIDENCE",
    "Intent",
    "IntentMatch",
    "IntentPattern",
    "IntentSet",
]

DEFAULT_MIN_CONFIDENCE: Final = 0.5
"""Below this an intent is reported in `Analysis.intents` but never chosen."""


@dataclass(frozen=True, slots=True)
class IntentPattern:
    """One compiled pattern and the evidence it gives.

    Attributes:
        source: the pattern as written.
        weight: 0 < weight <= 1.
        regex: the compiled, boundary-wrapped pattern.
    """

    source: str
    weight: float
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Intent:
    """A named intent with its patterns.

    Attributes:
        name: the intent's name (``schedule_appointment``).
        patterns: its compiled patterns.
        priority: higher wins over a more confident lower-priority intent.
    """

    name: str
    patterns: tuple[IntentPattern, ...]
    priority: int = 0

    @classmethod
    def build(
        cls, name: str, patterns: Iterable[str | tuple[str, float]], priority: int = 0
    ) -> Intent:
        """Compile an intent.

        Args:
            name: the intent's name.
            patterns: regular expressions (weight 1) or (pattern, weight) pairs.
            priority: see `Intent.priority`.

        Raises:
            ValueError: a weight outside (0, 1].
            re.error: a pattern does not compile.
        """
        compiled: list[IntentPattern] = []
        for item in patterns:
            source, weight = (item, 1.0) if isinstance(item, str) else item
            if not 0 < weight <= 1:
                raise ValueError(f"weight {weight} is outside (0, 1]")
            regex = re.compile(rf"(?<![a-z0-9])(?:{source})(?![a-z0-9])")
            compiled.append(IntentPattern(source, weight, regex))
        return cls(name, tuple(compiled), priority)

    def score(self, normalized: str) -> float:
        """Confidence 0..1 that ``normalized`` expresses this intent."""
        miss = 1.0
        for pattern in self.patterns:
            if pattern.regex.search(normalized):
                miss *= 1.0 - pattern.weight
                if miss == 0.0:
                    break
        return 1.0 - miss


@dataclass(frozen=True, slots=True)
class IntentMatch:
    """An intent found in an utterance.

    Attributes:
        name: the intent.
        confidence: 0..1.
        priority: the intent's priority.
    """

    name: str
    confidence: float
    priority: int = 0


class IntentSet:
    """An immutable set of intents, matched together.

    Args:
        intents: the intents; a later one replaces an earlier one of the same name.
        min_confidence: the threshold for `IntentSet.best` and `IntentSet.ranked`.
    """

    def __init__(
        self, intents: Iterable[Intent] = (), *, min_confidence: float = DEFAULT_MIN_CONFIDENCE
    ) -> None:
        self._intents: dict[str, Intent] = {}
        for intent in intents:
            self._intents[intent.name] = intent
        self.min_confidence = min_confidence

    @classmethod
    def from_patterns(
        cls,
        spec: Mapping[str, Iterable[str | tuple[str, float]]],
        *,
        priorities: Mapping[str, int] | None = None,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> IntentSet:
        """Build a set from ``{name: [pattern | (pattern, weight), ...]}``."""
        priorities = priorities or {}
        built = (Intent.build(name, pats, priorities.get(name, 0)) for name, pats in spec.items())
        return cls(built, min_confidence=min_confidence)

    def __or__(self, other: IntentSet) -> IntentSet:
        """The union; ``other``'s intents replace same-named ones, its threshold wins."""
        return IntentSet([*self, *other], min_confidence=other.min_confidence)

    def __iter__(self) -> Iterator[Intent]:
        return iter(self._intents.values())

    def __len__(self) -> int:
        return len(self._intents)

    def __contains__(self, name: object) -> bool:
        return name in self._intents

    @property
    def names(self) -> frozenset[str]:
        """The intent names."""
        return frozenset(self._intents)

    def match(self, normalized: str) -> tuple[IntentMatch, ...]:
        """Every intent with any evidence, most confident first.

        Args:
            normalized: text from `normalize`.
        """
        found = [
            IntentMatch(intent.name, round(confidence, 4), intent.priority)
            for intent in self._intents.values()
            if (confidence := intent.score(normalized)) > 0
        ]
        found.sort(key=lambda m: (-m.confidence, -m.priority, m.name))
        return tuple(found)

    def ranked(self, matches: Iterable[IntentMatch]) -> tuple[IntentMatch, ...]:
        """The matches at or above ``min_confidence``, by priority then confidence."""
        kept = [m for m in matches if m.confidence >= self.min_confidence]
        kept.sort(key=lambda m: (-m.priority, -m.confidence, m.name))
        return tuple(kept)


_PERSON = (
    r"(?:a |an |the |some |your |to |with )*(?:manager|managers|manger|supervisor|human|human "
    r"being|person|real person|live person|actual person|agent|representative|representitive|rep"
    r"|operator|someone|somebody|staff|owner|advisor|service advisor|receptionist|member of staff)"
)

_COMMON: Final[dict[str, list[str | tuple[str, float]]]] = {
    "human": [
        rf"(?:speak|talk|speaking|talking|connect me|put me through|transfer me|get me|give me"
        rf"|i want|i need|can i have|let me speak|let me talk)(?: (?:to|with))? {_PERSON}",
        r"(?:manager|managers|manger|supervisor|human being|real person|live person|actual person"
        r"|representative|representitive|operator|customer service|customer care)",
        (r"(?:human|agent|someone else|somebody else|a person)", 0.4),
        r"transfer me",
    ],
    "goodbye": [
        r"(?:good ?)?bye|bye bye|good by|good night|goodnight|thats all|that is all"
        r"|thatll be all|that will be all|nothing else|have a (?:good|nice|great|lovely)"
        r" (?:day|night|evening|one|weekend)|hang up|gotta go|got to go|i have to go|talk later"
        r"|talk to you later|take care",
    ],
    "repeat": [
        r"repeat(?: that| it| yourself)?|say (?:that|it) again|come again|pardon(?: me)?"
        r"|sorry what|what did you (?:say|just say)|what was that|one more time|say again",
        r"(?:didnt|did not|couldnt|could not) (?:catch|hear|get|understand) (?:that|you|it|what)",
        r"^(?:what|huh|sorry|excuse me)$",
    ],
    "thanks": [
        r"^(?:ok |okay |great )?(?:thanks|thank you|thank u|thanks a lot|thank you so much"
        r"|thank you very much|thanks so much|cheers|much appreciated|appreciate it)$",
        (r"thanks|thank you", 0.6),
    ],
    "greeting": [
        r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|namaste|hello there|hi there"
        r"|hey there)$",
        (r"^(?:hi|hello|hey|namaste)", 0.4),
    ],
    "wait": [
        r"hold on|hang on|one (?:moment|second|sec|minute)|just a (?:moment|second|sec|minute)"
        r"|give me a (?:moment|second|sec|minute)|wait a (?:moment|second|sec|minute)|^wait$",
    ],
    "who_are_you": [
        r"who (?:is this|are you|is calling|am i (?:speaking|talking) (?:to|with))|whos (?:this"
        r"|calling)|where are you calling from|what is this (?:about|regarding|call about)"
        r"|what company|why are you calling",
        r"(?:are you|is this|am i talking to|am i speaking to|am i speaking with) (?:a |an )?"
        r"(?:bot|robot|machine|computer|real person|human|person|ai|recording)",
    ],
    "busy": [
        r"(?:im|i am|were|we are) (?:busy|driving|in a meeting|at work|occupied|in the middle of)"
        r"|bad time|not a good time|call (?:me )?(?:back|later|tomorrow|another time)"
        r"|no time (?:right )?now|dont have time|do not have time"
        r"|can you call (?:me )?(?:back|later)",
        (r"busy|later", 0.6),
    ],
    "not_interested": [
        r"not interested|no interest|dont call|do not call|stop calling|remove (?:me|my number)"
        r"|take me off|not looking (?:anymore|any more|now)|already bought|already found"
        r"|not in the market|no longer (?:interested|looking)",
    ],
}

# Soft intents (thanks, greeting) rank below a plain yes/no (priority 0), so "yes, thank
# you" is a yes; a request for a person outranks everything.
_COMMON_PRIORITIES: Final = {
    "human": 5,
    "repeat": 3,
    "not_interested": 3,
    "goodbye": 2,
    "busy": 1,
    "wait": 1,
    "who_are_you": 1,
    "thanks": -1,
    "greeting": -1,
}

COMMON_INTENTS: Final = IntentSet.from_patterns(_COMMON, priorities=_COMMON_PRIORITIES)
"""Intents every flow gets (a flow may replace any of them by name)."""
