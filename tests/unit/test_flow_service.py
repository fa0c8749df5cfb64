"""The service-appointment flow (seed 004): new, existing and general callers."""

from __future__ import annotations

import pytest

from ai_pipeline.customers import Customer, InMemoryCustomerDirectory
from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_responder import FlowResponder, outcome_of
from ai_pipeline.responder import HangupAction, TransferAction, TransferTarget
from tests.unit.flow_script import Call, fixed_clock

ADVISOR = TransferTarget(extension_number="210")
HOURS = [
    "We're open Monday to Friday from 7:30 AM to 6 PM, and Saturday from 8 AM to 4 PM.",
    "We're closed on Sundays.",
]
JOHN = Customer(
    "John Smith", "+1 (555) 201-3344", customer_id="C-17", details={"vehicle": "2019 Honda Civic"}
)


@pytest.fixture
def bot(flows: dict[str, Flow]) -> FlowResponder:
    return FlowResponder(
        flows,
        default_flow="service_appointments",
        customers=InMemoryCustomerDirectory([JOHN]),
        transfer_target=ADVISOR,
        clock=fixed_clock,
    )


async def test_new_customer_books_an_oil_change(bot: FlowResponder) -> None:
    call = Call.start(bot, from_number="+15551234567")
    assert call.state.call_type == "inbound_new"
    assert call.greeting == (
        "Thanks for calling Riverside Auto Service, this is Sam. How can I help you today?"
    )
    reply = await call.say("Hi, I need to schedule an oil change")
    assert call.state.stage == "slot_collection"
    assert call.state.slots == {"service_type": "oil_change"}
    assert reply.text == "I'd be happy to set that up. What day would you like to come in?"

    reply = await call.say("tomorrow at 2")
    assert call.state.slots["preferred_date"] == "2025-06-12"
    assert call.state.slots["preferred_time"] == "14:00"  # 2 AM is outside opening hours
    assert reply.text == "Got it. And can I get your name for the booking?"

    reply = await call.say("My name is Maria Lopez")
    assert call.state.stage == "confirmation"
    assert reply.text == (
        "Just to confirm: an oil change on Thursday, June 12th at 2 PM, under the name "
        "Maria Lopez. Shall I book that?"
    )
    reply = await call.say("yes please")
    assert reply.lines[:2] == [
        "You're all set!",
        "We'll see you tomorrow at 2 PM.",
    ]
    assert call.state.stage == "anything_else"
    reply = await call.say("no that's it, thanks")
    assert reply.action == HangupAction("completed")

    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert outcome.outcome == "booked"
    assert outcome.call_type == "inbound_new"
    assert outcome.actions == ("schedule_appointment",)
    assert outcome.stages == (
        "intent_detection", "slot_collection", "confirmation", "anything_else", "done",
    )  # fmt: skip


async def test_existing_customer_is_greeted_by_name_and_not_asked_it(bot: FlowResponder) -> None:
    call = Call.start(bot, from_number="+15552013344")
    assert call.state.call_type == "inbound_existing"
    assert (
        call.greeting
        == "Hi John! Thanks for calling Riverside Auto Service. How can I help you today?"
    )
    reply = await call.say("I need my brakes looked at next Tuesday morning")
    # Every detail came in the first sentence: straight to the read-back.
    assert call.state.stage == "confirmation"
    assert reply.text == (
        "I'd be happy to set that up. Just to confirm: a brake service for your 2019 Honda "
        "Civic on Tuesday, June 17th at 9 AM, under the name John Smith. Shall I book that?"
    )
    await call.say("yep")
    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert (outcome.outcome, outcome.customer_id) == ("booked", "C-17")
    assert outcome.slots["customer_name"] == "John Smith"


async def test_a_sunday_is_refused_and_another_day_taken(bot: FlowResponder) -> None:
    call = Call.start(bot)
    assert call.state.call_type == "inbound_general"
    reply = await call.say("can I book a tire rotation for sunday")
    assert reply.lines[-1] == "Which other day works for you?"
    assert "preferred_date" not in call.state.slots
    reply = await call.say("saturday then")
    assert call.state.slots["preferred_date"] == "2025-06-14"
    assert reply.text == "Got it. What time works best for you?"
    reply = await call.say("6 in the evening")
    assert reply.text == (
        "We take appointments between 7:30 AM and 5 PM. What time in that window works for you?"
    )
    await call.say("10 am")
    assert call.state.slots["preferred_time"] == "10:00"


async def test_opening_hours_call(bot: FlowResponder) -> None:
    call = Call.start(bot, from_number="+15559876543")
    reply = await call.say("What are your hours?")
    assert reply.lines == [*HOURS, "Is there anything else I can help you with?"]
    reply = await call.say("No, that's all. Bye")
    assert reply.text == "Thanks for calling Riverside Auto Service. Have a great day!"
    assert reply.action == HangupAction("completed")
    outcome = outcome_of(call.ctx)
    assert outcome is not None and outcome.outcome == "info"


async def test_manager_request_escalates(bot: FlowResponder) -> None:
    call = Call.start(bot, from_number="+15551234567")
    await call.say("I need an oil change")
    reply = await call.say("Actually, let me speak to a manager")
    assert reply.text == (
        "I understand this needs more attention. Let me connect you with our service advisor."
    )
    assert reply.action == TransferAction(ADVISOR)
    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert (outcome.outcome, outcome.escalation_reason) == ("escalated", "human")


async def test_angry_caller_escalates(bot: FlowResponder) -> None:
    call = Call.start(bot, from_number="+15552013344")
    reply = await call.say("This is RIDICULOUS, I have been waiting all week for my car!!")
    assert reply.text == (
        "I'm sorry for the trouble. Let me connect you with our service manager right away."
    )
    assert reply.action == TransferAction(ADVISOR)
    state = call.state
    assert (state.escalated, state.escalation_reason) == (True, "angry")


async def test_complaint_is_a_flow_specific_escalation(bot: FlowResponder) -> None:
    call = Call.start(bot)
    reply = await call.say("you said it was fixed but it's still making the noise")
    assert reply.action == TransferAction(ADVISOR)
    assert call.state.escalation_reason == "complaint"


async def test_keypad_choices(bot: FlowResponder) -> None:
    call = Call.start(bot)
    reply = await call.say(dtmf="2")
    assert reply.lines[:2] == HOURS
    reply = await call.say(dtmf="0")
    assert reply.action == TransferAction(ADVISOR)


async def test_three_misunderstandings_hand_over(bot: FlowResponder) -> None:
    call = Call.start(bot)
    first = await call.say("purple elephants")
    assert first.text.startswith("Sorry, I didn't catch that.")
    await call.say("blah blah")
    third = await call.say("hmm the thing with the stuff")
    assert third.action == TransferAction(ADVISOR)
    assert call.state.escalation_reason == "misunderstood"
