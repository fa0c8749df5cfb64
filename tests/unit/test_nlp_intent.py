"""Intents: common ones, each shipped flow's own, confidence and priority."""

from __future__ import annotations

import datetime as dt

import pytest

from ai_pipeline.flow_model import Flow
from ai_pipeline.nlp import COMMON_INTENTS, Intent, IntentSet, analyze, normalize

NOW = dt.datetime(2025, 6, 11, 10, 0)


def intent_of(text: str, intents: IntentSet = COMMON_INTENTS) -> str | None:
    return analyze(text, intents, now=NOW).intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Can I speak to a manager?", "human"),
        ("i want to talk to a real person", "human"),
        ("get me the manger", "human"),  # recogniser slip
        ("representative", "human"),
        ("No, get me a manager, bye", "human"),  # a person outranks goodbye and no
        ("OK bye", "goodbye"),
        ("that's all, thanks", "goodbye"),
        ("have a nice day", "goodbye"),
        ("sorry, can you repeat that", "repeat"),
        ("what", "repeat"),
        ("I didn't catch that", "repeat"),
        ("thank you so much", "thanks"),
        ("hello", "greeting"),
        ("hold on a second", "wait"),
        ("who is this", "who_are_you"),
        ("am I talking to a robot", "who_are_you"),
        ("I'm driving right now", "busy"),
        ("please call me back later", "busy"),
        ("not interested, thanks", "not_interested"),
        ("stop calling me", "not_interested"),
        ("the weather is nice", None),
    ],
)
def test_common_intents(text: str, intent: str | None) -> None:
    assert intent_of(text) == intent


@pytest.mark.parametrize(
    ("flow", "stage", "text", "intent"),
    [
        ("restaurant", "start", "I want to book a table", "booking"),
        ("restaurant", "start", "i'd like to make a reservation for friday", "booking"),
        ("restaurant", "start", "what time do you open", "check_hours"),
        ("restaurant", "start", "what are your ours", "check_hours"),  # recogniser slip
        ("restaurant", "start", "where are you located", "check_location"),
        ("restaurant", "booking", "never mind", "cancel"),
        (
            "service_appointments",
            "intent_detection",
            "I need to schedule an oil change",
            "schedule_appointment",
        ),
        (
            "service_appointments",
            "intent_detection",
            "can I bring my car in tomorrow",
            "schedule_appointment",
        ),
        (
            "service_appointments",
            "intent_detection",
            "my brakes are squeaking",
            "schedule_appointment",
        ),
        (
            "service_appointments",
            "intent_detection",
            "what are your hours on saturday",
            "check_hours",
        ),
        ("service_appointments", "intent_detection", "is my car ready", "vehicle_status"),
        ("service_appointments", "intent_detection", "I want a refund", "complaint"),
        ("real_estate", "presentation", "I need to discuss with my wife first", "family_approval"),
        ("real_estate", "presentation", "no, I have to ask my family", "family_approval"),
        ("real_estate", "presentation", "it's a bit out of my budget", "price"),
        ("real_estate", "presentation", "let me think about it", "need_time"),
        ("real_estate", "presentation", "can I come and see the flat", "site_visit"),
        ("real_estate", "presentation", "sounds interesting", "maybe"),
        ("persona", "chat", "thanks, bye", "goodbye"),
    ],
)
def test_flow_intents(
    flows: dict[str, Flow], flow: str, stage: str, text: str, intent: str
) -> None:
    assert intent_of(text, flows[flow].stages[stage].intents) == intent


def test_weak_cues_add_up_to_a_confident_intent() -> None:
    intents = IntentSet(
        [Intent.build("pricing", [("price", 0.4), ("cost", 0.4), ("how much", 0.5)])]
    )
    weak = analyze("what's the price", intents, now=NOW)
    assert weak.intent is None and weak.intents[0].confidence == pytest.approx(0.4)
    strong = analyze("how much is the price and the cost", intents, now=NOW)
    assert strong.intent == "pricing"
    assert strong.confidence == pytest.approx(1 - 0.6 * 0.6 * 0.5)


def test_patterns_match_whole_words_only() -> None:
    intents = IntentSet([Intent.build("bye", ["bye"])])
    assert intent_of("bye now", intents) == "bye"
    assert intent_of("the byelaws", intents) is None


def test_a_flow_intent_replaces_a_common_one_by_name() -> None:
    mine = COMMON_INTENTS | IntentSet([Intent.build("goodbye", ["ciao"])])
    assert intent_of("ciao", mine) == "goodbye"
    assert intent_of("bye", mine) is None


def test_priority_orders_the_ranking() -> None:
    analysis = analyze("thanks, bye", COMMON_INTENTS, now=NOW)
    assert [m.name for m in analysis.ranked] == ["goodbye", "thanks"]


def test_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="weight"):
        Intent.build("x", [("a", 1.5)])


def test_normalize() -> None:
    assert normalize("That's all, THANKS!") == "thats all thanks"
    assert normalize("Uh-huh.") == "uh huh"
