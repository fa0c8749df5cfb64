"""The restaurant booking flow (seed 003's example) through FlowResponder."""

from __future__ import annotations

import pytest

from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_responder import FlowResponder, outcome_of
from ai_pipeline.responder import HangupAction, Responder, SayText, TransferAction, TransferTarget
from tests.unit.flow_script import Call, fixed_clock

MANAGER = TransferTarget(phone_number="+15555550199")


@pytest.fixture
def bot(flows: dict[str, Flow]) -> FlowResponder:
    return FlowResponder(
        flows, default_flow="restaurant", transfer_target=MANAGER, clock=fixed_clock
    )


def test_is_a_responder(flows: dict[str, Flow]) -> None:
    responder: Responder = FlowResponder(flows, default_flow="restaurant")
    assert isinstance(responder, FlowResponder)
    with pytest.raises(ValueError, match="default flow 'cafe' is not loaded"):
        FlowResponder(flows, default_flow="cafe")


async def test_table_booking_step_by_step(bot: FlowResponder) -> None:
    call = Call.start(bot)
    assert call.greeting == "Thank you for calling Bella Vista. How can I help you today?"
    reply = await call.say("I want to book a table")
    assert reply.text == "I'd be happy to book a table for you. How many people will be joining?"
    reply = await call.say("four")
    assert reply.text == "Got it. What day would you like to come in?"
    reply = await call.say("this Saturday")
    assert reply.text == "Great. And what time would you like?"
    reply = await call.say("seven thirty")
    assert call.state.slots["time"] == "19:30"  # a dinner booking: 7:30 PM
    reply = await call.say("it's Patel")
    assert reply.text == (
        "Let me confirm: a table for 4 on Saturday, June 14th at 7:30 PM, under the name "
        "Patel. Is that right?"
    )
    reply = await call.say("yes")
    assert (
        reply.lines[0]
        == "Perfect, you're booked: a table for 4 on Saturday, June 14th at 7:30 PM, under Patel."
    )
    reply = await call.say("no thank you")
    assert reply.text == "Thank you for calling Bella Vista. Have a wonderful day!"
    assert reply.action == HangupAction("completed")
    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert outcome.outcome == "booked"
    assert outcome.slots == {
        "party_size": 4,
        "date": "2025-06-14",
        "time": "19:30",
        "name": "Patel",
    }


async def test_everything_in_one_sentence_then_a_change(bot: FlowResponder) -> None:
    call = Call.start(bot)
    reply = await call.say("Hi, could I get a table for two tomorrow at 8pm under Garcia")
    assert call.state.stage == "confirm"
    assert reply.lines[-1] == "Is that right?"
    reply = await call.say("no, make it 6 people")
    assert call.state.slots["party_size"] == 6
    assert reply.lines[0] == "Sure, I've changed that."
    assert "a table for 6" in reply.text
    await call.say("yes that's right")
    assert call.state.outcome == "booked"


async def test_mondays_are_closed(bot: FlowResponder) -> None:
    call = Call.start(bot)
    reply = await call.say("table for 3 on monday please")
    assert reply.lines[-1] == "Which other day would you like?"
    assert "date" not in call.state.slots


async def test_hours_then_offer_to_book(bot: FlowResponder) -> None:
    call = Call.start(bot)
    reply = await call.say("what time do you close tonight")
    assert reply.lines[-1] == "Would you like to book a table?"
    reply = await call.say("yes please")
    assert reply.text == "Great! How many people will be joining?"


async def test_greets_a_known_caller_by_name(bot: FlowResponder) -> None:
    call = Call.start(bot, customer_name="Ana")
    assert call.greeting == "Hi Ana, thank you for calling Bella Vista. How can I help you today?"


async def test_greeting_text_parameter_wins(bot: FlowResponder) -> None:
    call = Call.start(bot, greeting_text="Ciao! You've reached Bella Vista.")
    assert call.greeting == "Ciao! You've reached Bella Vista."


async def test_flow_selected_by_parameter_and_by_number(flows: dict[str, Flow]) -> None:
    bot = FlowResponder(flows, default_flow="persona", clock=fixed_clock)
    by_number = Call.start(bot, to_number="+1 555 555 0123")
    assert by_number.state.flow == "restaurant"
    by_parameter = Call.start(bot, to_number="+15555550123", flow="service_appointments")
    assert by_parameter.state.flow == "service_appointments"
    fallback = Call.start(bot, flow="no_such_flow")
    assert fallback.state.flow == "persona"


async def test_manager_on_request_and_repeat(bot: FlowResponder) -> None:
    call = Call.start(bot)
    first = await call.say("book a table")
    again = await call.say("sorry, can you repeat that?")
    assert again.lines == first.lines
    reply = await call.say("just get me the manager")
    assert reply.items == [
        SayText("Of course, let me transfer you to a manager now.", cacheable=True),
        TransferAction(MANAGER),
    ]


async def test_a_caller_who_talks_over_the_transfer_line_is_still_transferred(
    bot: FlowResponder,
) -> None:
    # Barge-in cut "let me transfer you" before the transfer ran; the flow is over, so
    # the next turn (or silence) must carry the transfer out, not leave a dead line.
    call = Call.start(bot)
    await call.say("can I speak to a manager")
    reply = await call.say("wait, what time do you open?")
    assert reply.items == [TransferAction(MANAGER)]
    assert bot.silence(call.ctx) == [TransferAction(MANAGER)]


async def test_a_caller_who_talks_over_the_goodbye_is_hung_up(bot: FlowResponder) -> None:
    call = Call.start(bot)
    goodbye = bot.silence(call.ctx, final=True)
    assert goodbye[-1] == HangupAction("silence")
    reply = await call.say("hello? are you there?")
    assert reply.items == [HangupAction("silence")]


async def test_fixed_lines_are_cacheable_and_personal_ones_are_not(bot: FlowResponder) -> None:
    call = Call.start(bot)
    reply = await call.say("I'd like to make a reservation")
    assert all(isinstance(i, SayText) and i.cacheable for i in reply.items)
    reply = await call.say("for 5 people")
    assert all(isinstance(i, SayText) and i.cacheable for i in reply.items)
    await call.say("friday")
    await call.say("8 pm")
    reply = await call.say("Lee")
    assert not any(isinstance(i, SayText) and i.cacheable for i in reply.items)
