"""OpenAIChatModel with the real openai SDK against the local OpenAI simulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing

import pytest

from ai_pipeline.llm import ChatMessage, LlmError, TextDelta, ToolCall, ToolSpec
from ai_pipeline.openai_chat import PLACEHOLDER_API_KEY, ChatUsage, OpenAIChatModel
from realtime_voice.testing.openai_sim import (
    ALWAYS,
    Faults,
    OpenAISimulator,
    SimReply,
    SimToolCall,
)
from realtime_voice.testing.openai_sim_wire import split_tokens

HELLO = "Hello there. We open at nine in the morning, and close at nine at night."
MESSAGES = (ChatMessage("system", "You are a phone agent."), ChatMessage("user", "Hi"))
TRANSFER = ToolSpec(
    "transfer_to_human",
    "Hand the call to a person.",
    {"type": "object", "properties": {"reason": {"type": "string"}}},
)


@pytest.fixture
async def sim() -> AsyncIterator[OpenAISimulator]:
    simulator = OpenAISimulator(token_delay_ms=2)
    await simulator.start()
    yield simulator
    await simulator.close()


def make_model(
    sim: OpenAISimulator,
    *,
    deadline_s: float = 4.0,
    max_retries: int = 1,
    temperature: float = 0.3,
    max_tokens: int = 200,
    on_usage: Callable[[ChatUsage], None] | None = None,
) -> OpenAIChatModel:
    return OpenAIChatModel(
        model="sim-model",
        base_url=sim.base_url,
        api_key=None,
        deadline_s=deadline_s,
        max_retries=max_retries,
        temperature=temperature,
        max_tokens=max_tokens,
        on_usage=on_usage,
    )


async def collect(
    model: OpenAIChatModel,
    messages: Sequence[ChatMessage] = MESSAGES,
    tools: Sequence[ToolSpec] = (),
    limit_s: float = 10.0,
) -> list[TextDelta | ToolCall]:
    async with asyncio.timeout(limit_s):
        return [item async for item in model.stream(messages, tools)]


def text_of(items: Sequence[TextDelta | ToolCall]) -> str:
    return "".join(item.text for item in items if isinstance(item, TextDelta))


async def test_text_streams_in_order_while_the_model_is_still_writing(
    sim: OpenAISimulator,
) -> None:
    sim.token_delay_ms = 30
    sim.script(HELLO)
    model = make_model(sim)
    deltas: list[str] = []
    server_done_at_first_delta: bool | None = None
    async for item in model.stream(MESSAGES):
        assert isinstance(item, TextDelta)
        if server_done_at_first_delta is None:
            server_done_at_first_delta = sim.requests[0].finished.is_set()
        deltas.append(item.text)
    await model.aclose()
    assert "".join(deltas) == HELLO
    assert deltas == split_tokens(HELLO)
    assert server_done_at_first_delta is False  # streamed, not buffered until the end


async def test_tool_call_with_fragmented_arguments_is_yielded_whole(
    sim: OpenAISimulator,
) -> None:
    arguments = {"party_size": 4, "date": "2025-06-01", "notes": 'window seat, "quiet" please'}
    sim.script(
        SimReply(
            text="Let me book that.",
            tool_calls=(SimToolCall("book_table", arguments), SimToolCall("end_call", {})),
        )
    )
    model = make_model(sim)
    items = await collect(model, tools=[ToolSpec("book_table", "Book."), ToolSpec("end_call", "")])
    await model.aclose()
    calls = [item for item in items if isinstance(item, ToolCall)]
    assert text_of(items) == "Let me book that."
    assert items[-2:] == calls  # tool calls come after the text
    assert [(c.name, dict(c.arguments)) for c in calls] == [
        ("book_table", arguments),
        ("end_call", {}),
    ]
    assert all(c.id.startswith("call_") for c in calls)
    assert calls[0].id != calls[1].id
    # The simulator really did send the arguments in several pieces.
    assert sim.requests[0].chunks_sent > 8


async def test_malformed_tool_arguments_raise_a_clear_error(sim: OpenAISimulator) -> None:
    sim.script(SimReply(tool_calls=(SimToolCall("transfer_to_human", '{"reason": "angry'),)))
    model = make_model(sim)
    with pytest.raises(LlmError, match=r"transfer_to_human.*not valid JSON"):
        await collect(model, tools=[TRANSFER])
    sim.script(SimReply(tool_calls=(SimToolCall("transfer_to_human", "[1, 2]"),)))
    with pytest.raises(LlmError, match="must be a JSON object"):
        await collect(model, tools=[TRANSFER])
    await model.aclose()


@pytest.mark.parametrize(
    ("faults", "first_status"),
    [
        (lambda: Faults(server_error_times=1), 500),
        # A short Retry-After is waited out.
        (lambda: Faults(rate_limit_times=1, retry_after_s=0.1), 429),
    ],
    ids=["server_error_once", "rate_limited_with_short_retry_after"],
)
async def test_one_failure_is_retried_and_answers(
    sim: OpenAISimulator, faults: Callable[[], Faults], first_status: int
) -> None:
    sim.faults = faults()  # a fresh one: a Faults counts down as it fires
    sim.script(HELLO)
    model = make_model(sim)
    assert text_of(await collect(model)) == HELLO
    await model.aclose()
    assert [r.status for r in sim.requests] == [first_status, 200]


async def test_server_error_every_time_fails_after_one_retry(sim: OpenAISimulator) -> None:
    sim.faults.server_error_times = ALWAYS
    model = make_model(sim)
    with pytest.raises(LlmError, match="HTTP 500") as caught:
        await collect(model)
    await model.aclose()
    assert caught.value.__cause__ is not None  # the SDK error is chained
    assert [r.status for r in sim.requests] == [500, 500]


async def test_no_retry_when_disabled(sim: OpenAISimulator) -> None:
    sim.faults.server_error_times = ALWAYS
    model = make_model(sim, max_retries=0)
    with pytest.raises(LlmError):
        await collect(model)
    await model.aclose()
    assert len(sim.requests) == 1


async def test_rate_limit_with_long_retry_after_fails_within_the_deadline(
    sim: OpenAISimulator,
) -> None:
    sim.faults = Faults(rate_limit_times=ALWAYS, retry_after_s=30)
    model = make_model(sim, deadline_s=2.0)
    with pytest.raises(LlmError, match="429") as caught:
        await collect(model, limit_s=3.0)  # the call returns well before the 30 s
    await model.aclose()
    assert "deadline" in str(caught.value)
    assert [r.status for r in sim.requests] == [429]


async def test_client_errors_are_not_retried(sim: OpenAISimulator) -> None:
    await sim.close()
    strict = OpenAISimulator(api_key="right-key")
    await strict.start()
    model = OpenAIChatModel(model="m", base_url=strict.base_url, api_key="wrong-key")
    with pytest.raises(LlmError, match="HTTP 401"):
        await collect(model)
    await model.aclose()
    await strict.close()
    assert [r.status for r in strict.requests] == [401]


async def test_slow_first_token_beyond_the_deadline_fails_and_hangs_up(
    sim: OpenAISimulator,
) -> None:
    sim.faults.first_token_delay_ms = 5000
    model = make_model(sim, deadline_s=0.5)
    with pytest.raises(LlmError, match="deadline"):
        await collect(model, limit_s=2.0)
    await model.aclose()
    async with asyncio.timeout(5):
        await sim.requests[0].finished.wait()
    assert sim.requests[0].outcome == "client_disconnected"


async def test_stall_after_headers_fails_at_the_deadline(sim: OpenAISimulator) -> None:
    sim.faults.stall_times = ALWAYS
    model = make_model(sim, deadline_s=0.5)
    with pytest.raises(LlmError, match="deadline"):
        await collect(model, limit_s=2.0)
    await model.aclose()
    async with asyncio.timeout(5):
        await sim.requests[0].finished.wait()
    assert sim.requests[0].fault == "stall"
    assert sim.requests[0].outcome == "client_disconnected"


async def test_mid_stream_error_after_deltas_is_raised_not_retried(sim: OpenAISimulator) -> None:
    sim.faults = Faults(mid_stream_error_times=ALWAYS, mid_stream_error_after=3)
    sim.script(HELLO)
    model = make_model(sim)
    received: list[str] = []
    with pytest.raises(LlmError, match="after part of the answer"):
        async with asyncio.timeout(10):
            async for item in model.stream(MESSAGES):
                assert isinstance(item, TextDelta)
                received.append(item.text)
    await model.aclose()
    # Role chunk + two content chunks went out before the error event.
    assert received == split_tokens(HELLO)[:2]
    assert len(sim.requests) == 1  # never retried: the caller would hear it twice


async def test_mid_stream_error_before_any_delta_is_retried(sim: OpenAISimulator) -> None:
    sim.faults = Faults(mid_stream_error_times=1, mid_stream_error_after=1)
    sim.script(HELLO, HELLO)
    model = make_model(sim)
    assert text_of(await collect(model)) == HELLO
    await model.aclose()
    assert [r.outcome for r in sim.requests] == ["error_event", "completed"]


async def test_closing_the_iterator_early_drops_the_connection(sim: OpenAISimulator) -> None:
    sim.token_delay_ms = 50
    sim.script(HELLO)
    model = make_model(sim)
    received: list[str] = []
    async with aclosing(model.stream(MESSAGES)) as stream:
        async for item in stream:
            assert isinstance(item, TextDelta)
            received.append(item.text)
            if len(received) == 2:
                break  # barge-in
    async with asyncio.timeout(5):
        await sim.requests[0].finished.wait()
    await model.aclose()
    assert sim.requests[0].outcome == "client_disconnected"
    assert sim.requests[0].chunks_sent < len(split_tokens(HELLO))


async def test_cancelling_the_consumer_drops_the_connection(sim: OpenAISimulator) -> None:
    sim.token_delay_ms = 50
    sim.script(HELLO)
    model = make_model(sim)
    first = asyncio.Event()

    async def speak() -> None:
        async with aclosing(model.stream(MESSAGES)) as stream:
            async for _ in stream:
                first.set()

    task = asyncio.create_task(speak())
    async with asyncio.timeout(5):
        await first.wait()
    task.cancel()  # barge-in cancels the responder's task while it waits for tokens
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5):
        await sim.requests[0].finished.wait()
    await model.aclose()
    assert sim.requests[0].outcome == "client_disconnected"


async def test_an_empty_answer_is_an_error(sim: OpenAISimulator) -> None:
    sim.script("")
    model = make_model(sim)
    with pytest.raises(LlmError, match="empty answer"):
        await collect(model)
    await model.aclose()
    assert len(sim.requests) == 1


async def test_connection_refused_is_an_llm_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAIChatModel(model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key=None)
    with pytest.raises(LlmError, match="connection failed"):
        await collect(model)
    await model.aclose()


async def test_request_body_and_headers(sim: OpenAISimulator) -> None:
    sim.script("Sure.")
    model = make_model(sim, temperature=0.2, max_tokens=80)
    history = [
        ChatMessage("system", "You are a phone agent."),
        ChatMessage("user", "Get me a manager"),
        ChatMessage(
            "assistant",
            tool_calls=(ToolCall("call_1", "transfer_to_human", {"reason": "asked"}),),
        ),
        ChatMessage("tool", "transferred", tool_call_id="call_1"),
    ]
    await collect(model, history, [TRANSFER])
    await model.aclose()
    request = sim.requests[0]
    assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "sim-model",
        "messages": [
            {"role": "system", "content": "You are a phone agent."},
            {"role": "user", "content": "Get me a manager"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "transfer_to_human",
                            "arguments": '{"reason": "asked"}',
                        },
                    }
                ],
            },
            {"role": "tool", "content": "transferred", "tool_call_id": "call_1"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "transfer_to_human",
                    "description": "Hand the call to a person.",
                    "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
                },
            }
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 80,
    }


async def test_no_tools_key_without_tools(sim: OpenAISimulator) -> None:
    model = make_model(sim)
    await collect(model)
    await model.aclose()
    assert sim.requests[0].body is not None
    assert "tools" not in sim.requests[0].body


async def test_usage_is_reported_per_request_with_the_call_id(sim: OpenAISimulator) -> None:
    seen: list[ChatUsage] = []
    model = make_model(sim, on_usage=seen.append)
    sim.script(HELLO, "Bye.")
    for _ in range(2):
        async for _item in model.stream(MESSAGES, call_id="call-42"):
            pass
    await model.aclose()
    assert [u.completion_tokens for u in seen] == [
        len(split_tokens(HELLO)),
        len(split_tokens("Bye.")),
    ]
    assert all(u.call_id == "call-42" and u.model == "sim-model" for u in seen)
    assert all(u.prompt_tokens > 0 for u in seen)
    assert model.usage_totals.requests == 2
    assert model.usage_totals.completion_tokens == sum(u.completion_tokens for u in seen)


async def test_one_client_serves_concurrent_streams(sim: OpenAISimulator) -> None:
    texts = [f"Answer number {i}. Done." for i in range(5)]
    model = make_model(sim)
    for text in texts:
        sim.script(text)
    results = await asyncio.gather(*(collect(model) for _ in texts))
    await model.aclose()
    assert sorted(text_of(r) for r in results) == sorted(texts)


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="API key or a base URL"):
        OpenAIChatModel(model="m", base_url=None, api_key=None)
    with pytest.raises(ValueError, match="positive"):
        OpenAIChatModel(model="m", base_url="http://127.0.0.1:1/v1", api_key="k", deadline_s=0)
    with pytest.raises(ValueError, match="max_retries"):
        OpenAIChatModel(model="m", base_url="http://127.0.0.1:1/v1", api_key="k", max_retries=-1)
