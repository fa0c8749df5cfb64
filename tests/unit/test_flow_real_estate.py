"""The real-estate lead qualification flow (seed 000), driven through FlowResponder."""

from __future__ import annotations

import pytest

from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_responder import FlowResponder, outcome_of
from ai_pipeline.responder import HangupAction, TransferAction, TransferTarget
from tests.unit.flow_script import Call, fixed_clock

ADVISOR = TransferTarget(phone_number="+919800000000")
RAJESH = {
    "lead_name": "Rajesh",
    "property_type": "3BHK",
    "location": "Whitefield",
    "budget": "8000000",
    "source": "Facebook Ads",
}


@pytest.fixture
def bot(flows: dict[str, Flow]) -> FlowResponder:
    return FlowResponder(
        flows, default_flow="real_estate", transfer_target=ADVISOR, clock=fixed_clock
    )


def test_the_flow_has_the_eleven_stages(flows: dict[str, Flow]) -> None:
    assert list(flows["real_estate"].stages) == [
        "intro", "permission", "discovery", "qualification", "presentation",
        "objection_handling", "trial_close", "closing", "deal_closed",
        "follow_up_scheduled", "dead_end",
    ]  # fmt: skip


async def test_rajesh_conversation_end_to_end(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    assert call.greeting == (
        "Hi Rajesh, this is Alex calling from PropertyHub. I hope I'm not catching you at a "
        "bad time. I saw you were interested in 3BHK properties in Whitefield around 80 "
        "lakhs. I actually have some options that might be perfect for you. Do you have "
        "about 2 minutes to chat?"
    )

    reply = await call.say("Yes, sure")
    assert call.state.stage == "discovery"
    assert reply.lines == [
        "Great!",
        "Just to understand better, is this for your own use or are you looking at it as an "
        "investment?",
    ]

    reply = await call.say("It's for my family to live in")
    assert call.state.slots["purpose"] == "family"
    assert reply.text == "Perfect. And when are you ideally looking to make this purchase?"

    reply = await call.say("Within the next 3 months")
    assert call.state.stage == "qualification"
    assert call.state.slots["timeline"] == "three_months"
    assert reply.text == (
        "Excellent. So to confirm, you're looking for a 3BHK in Whitefield for your family, "
        "budget around 80 lakhs, and you want to move within 3 months. Did I get that right?"
    )

    reply = await call.say("Yes, exactly")
    assert call.state.stage == "presentation"
    assert reply.lines[0] == "Wonderful!"
    assert (
        reply.lines[-1] == "Would you like to schedule a site visit this weekend to check it out?"
    )

    reply = await call.say("I need to discuss with my wife first")
    assert call.state.stage == "objection_handling"
    assert call.state.objections == ["family_approval"]
    assert "How about I WhatsApp you all the property details" in reply.text
    assert reply.lines[-1] == "Does that work?"

    reply = await call.say("Yes, that would be helpful")
    assert call.state.stage == "closing"
    assert reply.text == (
        "Perfect! I'll send that right away. And once you've had a chance to review with your "
        "wife, shall I schedule a tentative site visit for this Saturday? You can always "
        "reschedule."
    )

    reply = await call.say("Sure, Saturday works")
    assert reply.text.startswith("Perfect! I've scheduled your site visit for Saturday.")
    assert reply.action == HangupAction("completed")

    assert call.state.stages == [
        "intro", "discovery", "qualification", "presentation", "objection_handling",
        "closing", "deal_closed",
    ]  # fmt: skip
    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert outcome.outcome == "qualified"
    assert outcome.slots == {
        "purpose": "family",
        "timeline": "three_months",
        "decision_maker": "wife",
        "whatsapp_details": True,
        "visit_date": "2025-06-14",
    }
    assert outcome.actions == ("send_details", "book_site_visit")
    assert not outcome.escalated


async def test_greeting_without_budget_or_lead_details_still_reads_well(
    bot: FlowResponder,
) -> None:
    call = Call.start(bot, lead_name="Meera", property_type="2BHK", location="Pune")
    assert "around" not in call.greeting
    assert call.greeting.startswith("Hi Meera, this is Alex calling from PropertyHub.")
    assert "2BHK properties in Pune" in call.greeting
    bare = Call.start(bot)
    assert bare.greeting == (
        "Hi, this is Alex calling from PropertyHub about the property enquiry you made. "
        "Do you have about 2 minutes to chat?"
    )


async def test_busy_lead_gets_a_callback_and_follow_up_outcome(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    reply = await call.say("I'm driving right now, can you call me later?")
    assert call.state.stage == "follow_up_scheduled"
    assert reply.text == "No problem at all. When would be a better time for me to call you back?"
    reply = await call.say("tomorrow evening")
    assert reply.text.startswith("Sure, I'll call you back tomorrow at 6 PM.")
    assert reply.action == HangupAction("completed")
    outcome = outcome_of(call.ctx)
    assert outcome is not None and outcome.outcome == "follow_up"
    assert outcome.slots == {"callback_day": "2025-06-12", "callback_time": "18:00"}


async def test_not_interested_ends_politely(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    reply = await call.say("No, I'm not interested")
    assert reply.text == (
        "No problem at all, Rajesh. Thank you for your time, and have a great day!"
    )
    assert reply.action == HangupAction("completed")
    outcome = outcome_of(call.ctx)
    assert outcome is not None and outcome.outcome == "not_interested"


async def test_correction_during_qualification_reconfirms(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    await call.say("yes")
    await call.say("it's for me")
    await call.say("maybe six months")
    reply = await call.say("no, it's actually an investment")
    assert call.state.slots["purpose"] == "investment"
    assert call.state.stage == "qualification"
    assert reply.lines[0] == "Thanks for clarifying."
    assert "for investment" in reply.text and "within 6 months" in reply.text


async def test_price_objection_then_decline_goes_to_trial_close(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    for line in ("yes", "investment", "this year", "yes"):
        await call.say(line)
    assert call.state.stage == "presentation"
    reply = await call.say("Hmm, that sounds too expensive for me")
    assert call.state.objections == ["price"]
    assert "flexible payment plans" in reply.text
    reply = await call.say("no thanks")
    assert call.state.stage == "trial_close"
    reply = await call.say("yes, I could come and see it")
    assert call.state.stage == "closing"
    reply = await call.say("next sunday at 11 am")
    assert call.state.slots["visit_date"] == "2025-06-22"
    assert call.state.slots["visit_time"] == "11:00"
    assert reply.text.startswith("Perfect! I've scheduled your site visit for Sunday at 11 AM.")


async def test_asking_for_a_person_transfers_at_once(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    await call.say("yes")
    reply = await call.say("Can I talk to a real person please")
    assert reply.text == (
        "Of course. Let me connect you with one of our senior property advisors right away."
    )
    assert reply.action == TransferAction(ADVISOR)
    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert (outcome.outcome, outcome.escalated, outcome.escalation_reason) == (
        "escalated",
        True,
        "human",
    )


async def test_who_is_this_explains_and_asks_permission(bot: FlowResponder) -> None:
    call = Call.start(bot, **RAJESH)
    reply = await call.say("Sorry, who is this?")
    assert call.state.stage == "permission"
    assert reply.lines[-1] == "Would you have a couple of minutes now?"
    await call.say("okay go ahead")
    assert call.state.stage == "discovery"
