"""The LLM path of FlowResponder, with small in-test chat models (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_responder import FlowResponder, outcome_of
from ai_pipeline.llm import (
    ChatMessage,
    ChatModel,
    LlmError,
    LlmUsageMeter,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from ai_pipeline.responder import (
    HangupAction,
    HistoryEntry,
    SayText,
    TransferAction,
    TransferTarget,
    UserTurn,
)
from tests.unit.flow_script import Call, fixed_clock

MANAGER = TransferTarget(phone_number="+15555550199")
SORRY = SayText("Sorry, could you say that again?", cacheable=True)
MENU_QUESTION = "do you have vegan options on the menu"

Event = TextDelta | ToolCall


class FakeModel:
    """A ChatModel that streams a script, then optionally fails or never finishes."""

    def __init__(
        self,
        script: Sequence[Event] = (),
        *,
        error: LlmError | None = None,
        hang: bool = False,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.script = list(script)
        self.error = error
        self.hang = hang
        self.gate = gate
        self.requests: list[tuple[list[ChatMessage], list[ToolSpec]]] = []
        self.closed = 0

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        meter: LlmUsageMeter | None = None,
        call_id: str = "",
    ) -> AsyncGenerator[Event, None]:
        self.requests.append((list(messages), list(tools)))
        try:
            for index, event in enumerate(self.script):
                if index == 2 and self.gate is not None:
                    await self.gate.wait()
                yield event
            if self.error is not None:
                raise self.error
            if self.hang:
                await asyncio.Event().wait()
        finally:
            self.closed += 1


def deltas(*parts: str) -> list[Event]:
    return [TextDelta(part) for part in parts]


def make_bot(
    flows: dict[str, Flow], model: ChatModel, llm_deadline_s: float = 4.0
) -> FlowResponder:
    return FlowResponder(
        flows,
        default_flow="restaurant",
        chat_model=model,
        transfer_target=MANAGER,
        llm_deadline_s=llm_deadline_s,
        clock=fixed_clock,
    )


async def test_streams_the_answer_sentence_by_sentence(flows: dict[str, Flow]) -> None:
    model = FakeModel(
        deltas("Yes, we have ", "several vegan dishes. Our", " mushroom risotto is popular! Would",
               " you like to book a table?")
    )  # fmt: skip
    call = Call.start(make_bot(flows, model))
    reply = await call.say(MENU_QUESTION)
    assert reply.items == [
        SayText("Yes, we have several vegan dishes."),
        SayText("Our mushroom risotto is popular!"),
        SayText("Would you like to book a table?"),
    ]
    assert model.closed == 1
    assert call.state.misunderstandings == 0


async def test_first_sentence_is_yielded_before_the_model_finishes(flows: dict[str, Flow]) -> None:
    gate = asyncio.Event()
    model = FakeModel(deltas("Good question. ", "We", " do have some."), gate=gate)
    call = Call.start(make_bot(flows, model))
    call.ctx.history.append(HistoryEntry("caller", MENU_QUESTION))
    replies = FlowResponder.respond(call.responder, UserTurn(MENU_QUESTION), call.ctx)
    first = await anext(replies)
    # The model is still blocked on the gate: the sentence went out as soon as the next
    # word proved it complete.
    assert first == SayText("Good question.")
    assert not gate.is_set()
    gate.set()
    assert [item async for item in replies] == [SayText("We do have some.")]


async def test_prompt_history_and_tools(flows: dict[str, Flow]) -> None:
    model = FakeModel(deltas("Yes we do."))
    call = Call.start(make_bot(flows, model), customer_name="Ana")
    await call.say("table for two please")
    call.ctx.history.append(HistoryEntry("bot", "Sure, and what day would", interrupted=True))
    await call.say(MENU_QUESTION)
    messages, tools = model.requests[0]
    system = messages[0]
    assert system.role == "system"
    assert "Bella Vista" in system.content
    assert "We're open Tuesday to Sunday" in system.content
    assert "The caller is Ana." in system.content
    assert "Known so far: party size: 2." in system.content
    assert "Still needed in this step: date (the day of the booking)" in system.content
    assert [(m.role, m.content) for m in messages[1:]] == [
        ("assistant", "Hi Ana, thank you for calling Bella Vista. How can I help you today?"),
        ("user", "table for two please"),
        ("assistant", "I'd be happy to book a table for you. What day would you like to come in?"),
        ("assistant", "Sure, and what day would…"),
        ("user", MENU_QUESTION),
    ]
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == {"transfer_to_human", "end_call", "book_table"}
    assert by_name["book_table"].parameters["required"] == ["party_size", "date", "time", "name"]


async def test_templates_answer_without_the_model(flows: dict[str, Flow]) -> None:
    model = FakeModel(deltas("unused"))
    call = Call.start(make_bot(flows, model))
    await call.say("what are your opening hours")
    await call.say("book a table for 4")
    assert model.requests == []


async def test_book_table_tool_fills_slots_and_records_the_outcome(flows: dict[str, Flow]) -> None:
    model = FakeModel(
        [
            TextDelta("Sure, I can do that. "),
            ToolCall(
                "call-1",
                "book_table",
                {"party_size": 3, "date": "2025-06-14", "time": "19:00", "name": "Kim"},
            ),
        ]
    )
    call = Call.start(make_bot(flows, model))
    reply = await call.say("could you just sort out saturday at seven for three, name Kim, vegan")
    assert reply.lines == [
        "Sure, I can do that.",
        "Perfect, you're booked: a table for 3 on Saturday, June 14th at 7 PM, under Kim.",
        "We look forward to seeing you!",
        "Is there anything else I can help you with?",
    ]
    outcome = outcome_of(call.ctx)
    assert outcome is not None
    assert outcome.outcome == "booked"
    assert outcome.actions == ("book_table",)
    assert outcome.slots == {"party_size": 3, "date": "2025-06-14", "time": "19:00", "name": "Kim"}


async def test_tool_call_missing_a_detail_asks_for_it(flows: dict[str, Flow]) -> None:
    model = FakeModel([ToolCall("c", "book_table", {"party_size": 2, "date": "2025-06-13"})])
    call = Call.start(make_bot(flows, model))
    reply = await call.say(MENU_QUESTION)
    assert reply.text == "And what time would you like?"
    assert call.state.outcome is None


async def test_tool_call_with_a_closed_day_is_refused(flows: dict[str, Flow]) -> None:
    model = FakeModel(
        [ToolCall("c", "book_table", {"party_size": 2, "date": "2025-06-16", "time": "19:00",
                                       "name": "Kim"})]
    )  # fmt: skip
    call = Call.start(make_bot(flows, model))
    reply = await call.say(MENU_QUESTION)
    assert reply.text == "Sorry, we're closed on Mondays. Which other day would you like?"
    assert call.state.actions == []


async def test_transfer_and_end_call_tools(flows: dict[str, Flow]) -> None:
    transfer = FakeModel([ToolCall("c", "transfer_to_human", {"reason": "allergy question"})])
    call = Call.start(make_bot(flows, transfer))
    reply = await call.say("I have a severe nut allergy, who can I check with")
    assert reply.action == TransferAction(MANAGER)
    assert call.state.escalation_reason == "tool"

    ending = FakeModel([TextDelta("Bye now!"), ToolCall("c", "end_call", {"reason": "done"})])
    call = Call.start(make_bot(flows, ending))
    reply = await call.say("alright I think I'm sorted then")
    assert reply.items == [SayText("Bye now!"), HangupAction("done")]


async def test_model_error_gives_the_graceful_line(flows: dict[str, Flow]) -> None:
    model = FakeModel(error=LlmError("503 from upstream"))
    call = Call.start(make_bot(flows, model))
    reply = await call.say(MENU_QUESTION)
    assert reply.items == [SORRY]
    assert call.state.misunderstandings == 1


async def test_silent_model_hits_the_deadline_and_the_caller_hears_sorry(
    flows: dict[str, Flow],
) -> None:
    model = FakeModel(hang=True)
    call = Call.start(make_bot(flows, model, llm_deadline_s=0.05))
    reply = await call.say(MENU_QUESTION)
    assert reply.items == [SORRY]
    assert model.closed == 1


async def test_half_a_sentence_then_silence_is_not_spoken(flows: dict[str, Flow]) -> None:
    model = FakeModel(deltas("Well, the chef usually"), hang=True)
    call = Call.start(make_bot(flows, model, llm_deadline_s=0.05))
    reply = await call.say(MENU_QUESTION)
    assert reply.items == [SORRY]


async def test_error_after_a_sentence_keeps_what_was_said(flows: dict[str, Flow]) -> None:
    model = FakeModel(deltas("We do. ", "The risotto"), error=LlmError("stream cut"))
    call = Call.start(make_bot(flows, model))
    reply = await call.say(MENU_QUESTION)
    assert reply.items == [SayText("We do.")]
    assert call.state.misunderstandings == 0


async def test_repeated_model_failures_hand_over(flows: dict[str, Flow]) -> None:
    model = FakeModel(error=LlmError("down"))
    call = Call.start(make_bot(flows, model))
    await call.say(MENU_QUESTION)
    await call.say("what about gluten free")
    reply = await call.say("any desserts")
    assert reply.action == TransferAction(MANAGER)
    assert call.state.escalation_reason == "misunderstood"


async def test_barge_in_closes_the_model_stream(flows: dict[str, Flow]) -> None:
    model = FakeModel(deltas("One. ", "Two. ", "Three."))
    call = Call.start(make_bot(flows, model))
    call.ctx.history.append(HistoryEntry("caller", MENU_QUESTION))
    replies = call.responder.respond(UserTurn(MENU_QUESTION), call.ctx)
    assert await anext(replies) == SayText("One.")
    await replies.aclose()  # what the session does when the caller interrupts
    assert model.closed == 1
