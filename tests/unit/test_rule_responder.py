"""The offline rule responder: intents, booking slots, actions and per-call memory."""

from __future__ import annotations

import re

import pytest

from ai_pipeline.responder import (
    ConversationContext,
    HangupAction,
    Responder,
    ResponseItem,
    SayText,
    TransferAction,
    TransferTarget,
    UserTurn,
)
from ai_pipeline.rule_responder import DEFAULT_TRANSFER_TARGET, RuleBasedResponder, normalize

HOURS = "We're open every day from noon to 11 PM."
MANAGER = TransferTarget(extension_number="104")
HANDOFF = SayText("Of course, let me transfer you to a manager now.", cacheable=True)
ANYTHING_ELSE = "Is there anything else I can help you with?"


@pytest.fixture
def bot() -> RuleBasedResponder:
    return RuleBasedResponder(
        business_name="Chez Test", transfer_target=MANAGER, opening_hours=HOURS
    )


@pytest.fixture
def ctx() -> ConversationContext:
    return ConversationContext(call_id="call-1")


async def say(
    bot: RuleBasedResponder, ctx: ConversationContext, text: str = "", dtmf: str | None = None
) -> list[ResponseItem]:
    items = [item async for item in bot.respond(UserTurn(text, dtmf=dtmf), ctx)]
    # Every reply: speech first, one sentence per SayText, at most one action, last.
    actions = [i for i, item in enumerate(items) if not isinstance(item, SayText)]
    assert actions in ([], [len(items) - 1])
    for item in items:
        if isinstance(item, SayText) and item.text != HOURS:
            assert not re.search(r"[.!?]\s+\S", item.text), item.text
    return items


def texts(items: list[ResponseItem]) -> str:
    return " ".join(item.text for item in items if isinstance(item, SayText))


def test_is_a_responder() -> None:
    responder: Responder = RuleBasedResponder()
    assert responder.greeting(ConversationContext(call_id="x")) == (
        "Thank you for calling Bella Vista. How can I help you today?"
    )


def test_rejects_a_non_positive_misunderstanding_limit() -> None:
    with pytest.raises(ValueError, match="max_misunderstandings"):
        RuleBasedResponder(max_misunderstandings=0)


# --- greeting ------------------------------------------------------------------------


def test_greeting_names_the_business(bot: RuleBasedResponder, ctx: ConversationContext) -> None:
    assert bot.greeting(ctx) == "Thank you for calling Chez Test. How can I help you today?"


def test_greeting_uses_customer_name(bot: RuleBasedResponder) -> None:
    ctx = ConversationContext(call_id="c", custom_parameters={"customer_name": "Ana"})
    assert bot.greeting(ctx) == "Hi Ana, thank you for calling Chez Test. How can I help you today?"


def test_greeting_text_overrides_everything(bot: RuleBasedResponder) -> None:
    params = {"greeting_text": "Welcome to the test line!", "customer_name": "Ana"}
    ctx = ConversationContext(call_id="c", custom_parameters=params)
    assert bot.greeting(ctx) == "Welcome to the test line!"


def test_blank_greeting_text_falls_back(bot: RuleBasedResponder) -> None:
    ctx = ConversationContext(call_id="c", custom_parameters={"greeting_text": "  "})
    assert bot.greeting(ctx).startswith("Thank you for calling Chez Test.")


# --- opening hours -------------------------------------------------------------------


@pytest.mark.parametrize(
    "utterance",
    [
        "What time do you open?",
        "what time do you open",
        "What are your opening hours?",
        "when are you open",
        "hours",
        "what are your ours",  # recogniser slip
        "WHEN DO YOU CLOSE TONIGHT",
        "are you open on sundays",
        "how late are you open?",
        "what time does the restaurant close",
        "opening times please",
    ],
)
async def test_opening_hours(
    bot: RuleBasedResponder, ctx: ConversationContext, utterance: str
) -> None:
    items = await say(bot, ctx, utterance)
    assert items == [
        SayText(HOURS, cacheable=True),
        SayText("Would you like to book a table?", cacheable=True),
    ]


async def test_multi_sentence_hours_are_split_into_sentences() -> None:
    bot = RuleBasedResponder(opening_hours="Open at 5 PM. Closed Mondays!")
    ctx = ConversationContext(call_id="c")
    items = [item async for item in bot.respond(UserTurn("opening hours"), ctx)]
    assert [i.text for i in items if isinstance(i, SayText)] == [
        "Open at 5 PM.",
        "Closed Mondays!",
        "Would you like to book a table?",
    ]


async def test_yes_after_hours_starts_a_booking(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "when are you open")
    items = await say(bot, ctx, "yes please")
    assert texts(items) == (
        "I'd be happy to book a table for you. "
        "Could you tell me how many people, what day and what time?"
    )


async def test_no_after_hours_then_no_again_says_goodbye(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "opening hours")
    assert texts(await say(bot, ctx, "no")) == f"No problem. {ANYTHING_ELSE}"
    items = await say(bot, ctx, "no thank you")
    assert items[-1] == HangupAction("completed")


async def test_yes_no_only_answer_the_question_just_asked(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "opening hours")
    await say(bot, ctx, "hello")  # the pending question lapses
    assert "didn't quite understand" in texts(await say(bot, ctx, "yes"))


# --- booking -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "utterance",
    [
        "I want to book a table",
        "Can I make a reservation?",
        "i'd like to reserve",
        "I need to make a preservation",  # recogniser slip
        "could I look a table",  # recogniser slip for "book"
        "do you take bookings",
        "hi I'd like to make reservations please",
    ],
)
async def test_booking_request_asks_for_everything(
    bot: RuleBasedResponder, ctx: ConversationContext, utterance: str
) -> None:
    items = await say(bot, ctx, utterance)
    assert items == [
        SayText("I'd be happy to book a table for you.", cacheable=True),
        SayText("Could you tell me how many people, what day and what time?", cacheable=True),
    ]


@pytest.mark.parametrize(
    ("utterance", "booked"),
    [
        ("book a table for 4 tomorrow at 7 pm", "a table for four tomorrow at 7 PM"),
        ("Book a table for four, tomorrow, at 7 p.m.", "a table for four tomorrow at 7 PM"),
        (
            "reservation for six people on friday at seven thirty pm",
            "a table for six on Friday at 7:30 PM",
        ),
        ("a table for for next saturday at 8", "a table for four next Saturday at 8 PM"),
        ("party of 3 today at 6 o'clock", "a table for three today at 6 PM"),
        ("table for two at 11 am on sunday", "a table for two on Sunday at 11 AM"),
        ("reservation for five at noon tomorrow", "a table for five tomorrow at 12 PM"),
        ("reserve for 2 people tonight at 19:00", "a table for two tonight at 7 PM"),
        ("book a table for to on wensday at 8:15pm", "a table for two on Wednesday at 8:15 PM"),
        ("table for 2 to morrow at 12:30 am", "a table for two tomorrow at 12:30 AM"),
        ("book a table for 3 today at 00:15", "a table for three today at 12:15 AM"),
    ],
)
async def test_booking_in_one_sentence_is_confirmed(
    bot: RuleBasedResponder, ctx: ConversationContext, utterance: str, booked: str
) -> None:
    items = await say(bot, ctx, utterance)
    assert items == [
        SayText(f"Perfect, I've booked {booked}.", cacheable=False),
        SayText(ANYTHING_ELSE, cacheable=True),
    ]


@pytest.mark.parametrize(
    ("utterance", "echo", "question"),
    [
        ("table for four", "a table for four", "what day and what time"),
        ("book a table for tomorrow", "a table tomorrow", "how many people and what time"),
        ("reserve a table at 8 pm", "a table at 8 PM", "how many people and what day"),
        ("book a table for 2 on friday", "a table for two on Friday", "what time"),
        ("book a table for 2 on monday at 99", "a table for two on Monday", "what time"),
    ],
)
async def test_partial_booking_echoes_and_asks_for_the_rest(
    bot: RuleBasedResponder, ctx: ConversationContext, utterance: str, echo: str, question: str
) -> None:
    items = await say(bot, ctx, utterance)
    assert texts(items) == f"Great, {echo}. Could you tell me {question}?"


async def test_booking_over_several_turns(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "I'd like to book a table")
    assert texts(await say(bot, ctx, "six please")) == (
        "Got it, a table for six. Could you tell me what day and what time?"
    )
    assert texts(await say(bot, ctx, "Friday")) == (
        "Got it, a table for six on Friday. Could you tell me what time?"
    )
    assert texts(await say(bot, ctx, "seven thirty")) == (
        f"Perfect, I've booked a table for six on Friday at 7:30 PM. {ANYTHING_ELSE}"
    )
    # The booking is finished: a new request starts from scratch.
    assert texts(await say(bot, ctx, "book a table")).startswith("I'd be happy to book")


async def test_booking_party_size_can_be_corrected(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "table for two tomorrow")
    items = await say(bot, ctx, "actually make it 5 people")
    assert texts(items) == "Got it, a table for five tomorrow. Could you tell me what time?"


async def test_hours_question_during_a_booking_keeps_the_booking(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "book a table for 4")
    items = await say(bot, ctx, "what time do you close on friday")
    assert (
        texts(items) == f"{HOURS} Got it, a table for four on Friday. Could you tell me what time?"
    )


async def test_booking_and_hours_in_one_turn(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    items = await say(bot, ctx, "when are you open, I want to book a table")
    assert texts(items) == (
        f"{HOURS} I'd be happy to book a table for you. "
        "Could you tell me how many people, what day and what time?"
    )


async def test_booking_can_be_cancelled(bot: RuleBasedResponder, ctx: ConversationContext) -> None:
    await say(bot, ctx, "book a table for 4")
    assert texts(await say(bot, ctx, "never mind")) == (
        f"No problem, I won't book anything. {ANYTHING_ELSE}"
    )
    assert (await say(bot, ctx, "no"))[-1] == HangupAction("completed")


async def test_unclear_answer_during_booking_repeats_the_question(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "table for 4 tomorrow")
    items = await say(bot, ctx, "um well")
    assert texts(items) == "Sorry, I didn't quite understand. Could you tell me what time?"


# --- transfer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "utterance",
    [
        "Can I speak to a manager?",
        "let me talk to the manger",  # recogniser slip
        "get me a human",
        "I want a real person",
        "is there a person I can talk to",
        "representative",
        "agent please",
        "operator",
        "I'd like to speak with someone",
        "no, get me a manager, bye",  # the manager wins over goodbye
    ],
)
async def test_asking_for_a_person_transfers(
    bot: RuleBasedResponder, ctx: ConversationContext, utterance: str
) -> None:
    assert await say(bot, ctx, utterance) == [HANDOFF, TransferAction(MANAGER)]


async def test_default_transfer_target() -> None:
    bot = RuleBasedResponder()
    items = [i async for i in bot.respond(UserTurn("manager"), ConversationContext(call_id="c"))]
    assert items[-1] == TransferAction(DEFAULT_TRANSFER_TARGET)
    assert DEFAULT_TRANSFER_TARGET.phone_number == "+15555550100"


# --- goodbye -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "utterance",
    [
        "bye",
        "Goodbye!",
        "good bye",
        "thank you bye",
        "Thank you, bye!",
        "thanks by",  # recogniser slip
        "that's all",
        "thats all thanks",
        "no that will be all",
        "have a good night",
        "ok bye bye",
    ],
)
async def test_goodbye_hangs_up_after_speaking(
    bot: RuleBasedResponder, ctx: ConversationContext, utterance: str
) -> None:
    assert await say(bot, ctx, utterance) == [
        SayText("Thank you for calling Chez Test.", cacheable=True),
        SayText("Have a wonderful day!", cacheable=True),
        HangupAction("completed"),
    ]


# --- DTMF ----------------------------------------------------------------------------


async def test_dtmf_zero_transfers(bot: RuleBasedResponder, ctx: ConversationContext) -> None:
    assert await say(bot, ctx, "[dtmf 0]", dtmf="0") == [HANDOFF, TransferAction(MANAGER)]


@pytest.mark.parametrize(("digit", "spoken"), [("5", "5"), ("*", "star"), ("#", "pound")])
async def test_other_digits_are_acknowledged(
    bot: RuleBasedResponder, ctx: ConversationContext, digit: str, spoken: str
) -> None:
    items = await say(bot, ctx, f"[dtmf {digit}]", dtmf=digit)
    assert all(isinstance(item, SayText) for item in items)
    assert texts(items) == f"You pressed {spoken}. To speak with a manager, press 0."


# --- misunderstandings ---------------------------------------------------------------


async def test_unknown_and_empty_turns_reprompt(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    assert texts(await say(bot, ctx, "the purple elephant")) == (
        "Sorry, I didn't quite understand. "
        "I can tell you our opening hours or book a table for you."
    )
    assert texts(await say(bot, ctx, "")) == (
        "Sorry, I didn't catch that. I can tell you our opening hours or book a table for you."
    )


async def test_three_misunderstandings_in_a_row_transfer(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    first = await say(bot, ctx, "blah")
    second = await say(bot, ctx, "")
    third = await say(bot, ctx, "hmm what")
    assert not any(isinstance(i, TransferAction) for i in first + second)
    assert third == [
        SayText("I'm sorry, I'm having trouble understanding.", cacheable=True),
        SayText("Let me transfer you to someone who can help.", cacheable=True),
        TransferAction(MANAGER),
    ]
    # The count starts again after the handover.
    assert TransferAction(MANAGER) not in await say(bot, ctx, "blah")


async def test_an_understood_turn_resets_the_count(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    for text in ("blah", "blah", "hello", "blah", "blah"):
        items = await say(bot, ctx, text)
        assert TransferAction(MANAGER) not in items
    assert (await say(bot, ctx, "blah"))[-1] == TransferAction(MANAGER)


async def test_dtmf_resets_the_count(bot: RuleBasedResponder, ctx: ConversationContext) -> None:
    await say(bot, ctx, "blah")
    await say(bot, ctx, "blah")
    await say(bot, ctx, "[dtmf 3]", dtmf="3")
    assert TransferAction(MANAGER) not in await say(bot, ctx, "blah")


async def test_each_call_keeps_its_own_count(bot: RuleBasedResponder) -> None:
    a, b = ConversationContext(call_id="a"), ConversationContext(call_id="b")
    await say(bot, a, "blah")
    await say(bot, a, "blah")
    await say(bot, b, "blah")
    assert TransferAction(MANAGER) not in await say(bot, b, "blah")
    assert (await say(bot, a, "blah"))[-1] == TransferAction(MANAGER)


async def test_limit_is_configurable(ctx: ConversationContext) -> None:
    bot = RuleBasedResponder(max_misunderstandings=1)
    items = [i async for i in bot.respond(UserTurn("blah"), ctx)]
    assert isinstance(items[-1], TransferAction)


# --- small talk and robustness -------------------------------------------------------


async def test_yes_to_anything_else_invites_the_request(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    await say(bot, ctx, "book a table for 2 tomorrow at 8")
    assert texts(await say(bot, ctx, "yes")) == "Of course. What can I help you with?"
    assert "opening hours" in texts(await say(bot, ctx, "yes"))  # nothing pending any more


async def test_hello_and_thanks(bot: RuleBasedResponder, ctx: ConversationContext) -> None:
    assert texts(await say(bot, ctx, "Hello?")) == "Hello! How can I help you today?"
    assert texts(await say(bot, ctx, "thank you so much")) == f"You're welcome! {ANYTHING_ELSE}"
    assert (await say(bot, ctx, "nope"))[-1] == HangupAction("completed")


async def test_cancelled_iteration_leaves_the_call_usable(
    bot: RuleBasedResponder, ctx: ConversationContext
) -> None:
    gen = bot.respond(UserTurn("book a table for 4 tomorrow"), ctx)
    first = await anext(gen)
    assert isinstance(first, SayText)
    await gen.aclose()  # barge-in
    items = await say(bot, ctx, "at 8")
    assert texts(items).startswith("Perfect, I've booked a table for four tomorrow at 8 PM.")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("That's all, thanks!", "thats all thanks"),
        ("7 p.m.", "7 p m"),
        ("  What TIME   do you\topen?? ", "what time do you open"),
        ("I’d like a table", "id like a table"),
        ("", ""),
    ],
)
def test_normalize(raw: str, clean: str) -> None:
    assert normalize(raw) == clean
