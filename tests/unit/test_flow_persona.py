"""The persona assistant flow (seed 002) without a model: answers only from documents."""

from __future__ import annotations

import pytest

from ai_pipeline.flow_responder import FlowResponder
from ai_pipeline.flow_schema import load_flows
from ai_pipeline.responder import HangupAction, TransferAction
from ai_pipeline.rule_responder import DEFAULT_TRANSFER_TARGET
from tests.unit.flow_script import Call, fixed_clock

DOCS = (
    "Sunrise Clinic is open from 9 AM to 6 PM on weekdays. A general consultation costs 500 "
    "rupees. Parking is free for patients. Dr. Mehta sees children on Tuesdays."
)


@pytest.fixture
def bot() -> FlowResponder:
    return FlowResponder(load_flows(), default_flow="persona", clock=fixed_clock)


async def test_greets_as_the_persona_and_answers_from_documents(bot: FlowResponder) -> None:
    call = Call.start(bot, persona_name="Anjali", customer_name="Ravi", documents=DOCS)
    assert call.greeting == "Hi Ravi, I'm Anjali. How can I help you today?"
    reply = await call.say("How much does a consultation cost?")
    assert reply.text == "A general consultation costs 500 rupees."
    reply = await call.say("is parking free")
    assert reply.text == "Parking is free for patients."
    reply = await call.say("when does Dr. Mehta see children")
    assert reply.text == "Dr. Mehta sees children on Tuesdays."


async def test_says_it_does_not_know_rather_than_guessing(bot: FlowResponder) -> None:
    call = Call.start(bot, documents=DOCS)
    reply = await call.say("do you sell car insurance")
    assert reply.text == (
        "I'm sorry, I don't have that information. Is there anything else I can help you with?"
    )
    assert call.state.misunderstandings == 1
    await call.say("what about home loans")
    reply = await call.say("and stock tips")
    assert reply.action == TransferAction(DEFAULT_TRANSFER_TARGET)


async def test_greeting_text_and_goodbye(bot: FlowResponder) -> None:
    call = Call.start(bot, greeting_text="Namaste! Main Priya bol rahi hoon.", customer_name="Ravi")
    assert call.greeting == "Namaste! Main Priya bol rahi hoon."
    reply = await call.say("ok thank you, bye")
    assert reply.text == "Thank you for calling, Ravi. Take care!"
    assert reply.action == HangupAction("completed")


async def test_silence_reprompts_then_ends(bot: FlowResponder) -> None:
    call = Call.start(bot)
    first = bot.silence(call.ctx)
    assert [getattr(i, "text", None) for i in first] == [
        "Are you still there?",
        "What else would you like to know?",
    ]
    last = bot.silence(call.ctx, final=True)
    assert last[-1] == HangupAction("silence")
