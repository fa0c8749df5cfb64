"""Local, fast language understanding for phone turns: intent, tone, entities, fillers.

Pure Python and precompiled regular expressions: no model, no network, well under a
millisecond per turn. `analyze` is the one-call entry point; `is_backchannel` tells
the session which utterances are only "uh-huh"s.
"""

from __future__ import annotations

from ai_pipeline.nlp.analysis import Analysis, analyze
from ai_pipeline.nlp.backchannel import is_backchannel
from ai_pipeline.nlp.dates import (
    DateMention,
    PartOfDay,
    TimeMention,
    parse_date,
    parse_time,
    speak_date,
    speak_time,
)
from ai_pipeline.nlp.entities import (
    Entities,
    YesNo,
    extract_entities,
    find_party_size,
    find_person_name,
    find_phone_numbers,
    find_yes_no,
)
from ai_pipeline.nlp.intent import (
    COMMON_INTENTS,
    DEFAULT_MIN_CONFIDENCE,
    Intent,
    IntentMatch,
    IntentPattern,
    IntentSet,
)
from ai_pipeline.nlp.money import Money, find_money, speak_money
from ai_pipeline.nlp.normalize import normalize, prepare
from ai_pipeline.nlp.numbers import (
    Digitized,
    SpokenNumber,
    digitize,
    format_decimal,
    normalize_numbers,
)
from ai_pipeline.nlp.tone import Tone, ToneResult, detect_tone

__all__ = [
    "COMMON_INTENTS",
    "DEFAULT_MIN_CONFIDENCE",
    "Analysis",
    "DateMention",
    "Digitized",
    "Entities",
    "Intent",
    "IntentMatch",
    "IntentPattern",
    "IntentSet",
    "Money",
    "PartOfDay",
    "SpokenNumber",
    "TimeMention",
    "Tone",
    "ToneResult",
    "YesNo",
    "analyze",
    "detect_tone",
    "digitize",
    "extract_entities",
    "find_money",
    "find_party_size",
    "find_person_name",
    "find_phone_numbers",
    "find_yes_no",
    "format_decimal",
    "is_backchannel",
    "normalize",
    "normalize_numbers",
    "parse_date",
    "parse_time",
    "prepare",
    "speak_date",
    "speak_money",
    "speak_time",
]
