"""The OpenAI simulator on the wire: raw HTTP, byte-level event framing, exact shapes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from realtime_voice.testing.openai_sim import Faults, OpenAISimulator, SimReply, SimToolCall
from realtime_voice.testing.openai_sim_rules import AFTER_TOOL_TEXT, FALLBACK_TEXT

CHUNK_KEYS = {"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint"}
AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture
async def sim() -> AsyncIterator[OpenAISimulator]:
    simulator = OpenAISimulator(token_delay_ms=0)
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client


def request_body(text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **extra}


def parse_events(raw: bytes) -> list[Any]:
    """Split an SSE body into its data payloads; every event must be ``data: ...\\n\\n``."""
    assert raw.endswith(b"\n\n")
    events: list[Any] = []
    for block in raw.split(b"\n\n")[:-1]:
        assert block.startswith(b"data: "), block
        payload = block[len(b"data: ") :].decode()
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


async def post(
    http: httpx2.AsyncClient, sim: OpenAISimulator, body: dict[str, Any]
) -> httpx2.Response:
    return await http.post(f"{sim.base_url}/chat/completions", json=body, headers=AUTH)


async def test_streamed_text_has_the_api_chunk_shapes(
    sim: OpenAISimulator, http: httpx2.AsyncClient
) -> None:
    sim.script("Hello there. How can I help?")
    body = request_body(stream=True, stream_options={"include_usage": True})
    response = await post(http, sim, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.content)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-")
    for c in chunks:
        assert set(c) == CHUNK_KEYS | {"usage"}
        assert c["object"] == "chat.completion.chunk"
        assert c["model"] == "gpt-test"
    first, *middle, finish, usage = chunks
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == (
        "Hello there. How can I help?"
    )
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    assert all(c["usage"] is None for c in [first, *middle, finish])
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == len(middle)
    assert usage["usage"]["total_tokens"] == (
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    )


async def test_no_usage_without_include_usage(
    sim: OpenAISimulator, http: httpx2.AsyncClient
) -> None:
    response = await post(http, sim, request_body(stream=True))
    chunks = parse_events(response.content)[:-1]
    assert all(set(c) == CHUNK_KEYS for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_streamed_tool_call_fragments(sim: OpenAISimulator, http: httpx2.AsyncClient) -> None:
    arguments = {"reason": "the caller wants a manager", "priority": 2}
    sim.script(SimReply(tool_calls=(SimToolCall("transfer_to_human", arguments),)))
    response = await post(http, sim, request_body(stream=True))
    chunks = parse_events(response.content)[:-1]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    opening = deltas[0]
    assert opening["role"] == "assistant" and opening["content"] is None
    [call] = opening["tool_calls"]
    assert call["index"] == 0 and call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "transfer_to_human", "arguments": ""}
    fragments = [d["tool_calls"][0] for d in deltas[1:-1]]
    assert len(fragments) > 2
    assert all(set(f) == {"index", "function"} for f in fragments)
    joined = "".join(f["function"]["arguments"] for f in fragments)
    assert json.loads(joined) == arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_plain_request_gets_a_chat_completion(
    sim: OpenAISimulator, http: httpx2.AsyncClient
) -> None:
    sim.script("Fine, thanks.")
    response = await post(http, sim, request_body())
    obj = response.json()
    assert obj["object"] == "chat.completion"
    assert obj["choices"][0]["message"]["content"] == "Fine, thanks."
    assert obj["choices"][0]["message"]["role"] == "assistant"
    assert obj["choices"][0]["finish_reason"] == "stop"
    assert obj["usage"]["total_tokens"] > 0


async def test_missing_or_wrong_key_is_refused(http: httpx2.AsyncClient) -> None:
    strict = OpenAISimulator(api_key="sk-right")
    await strict.start()
    url = f"{strict.base_url}/chat/completions"
    missing = await http.post(url, json=request_body())
    wrong = await http.post(url, json=request_body(), headers={"Authorization": "Bearer sk-x"})
    right = await http.post(url, json=request_body(), headers={"Authorization": "Bearer sk-right"})
    await strict.close()
    assert missing.status_code == 401
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200


async def test_bad_request_names_the_parameter(
    sim: OpenAISimulator, http: httpx2.AsyncClient
) -> None:
    response = await post(http, sim, {"model": "gpt-test", "messages": []})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


async def test_rate_limit_then_server_error_then_success(
    sim: OpenAISimulator, http: httpx2.AsyncClient
) -> None:
    sim.faults = Faults(rate_limit_times=1, retry_after_s=7, server_error_times=1)
    limited = await post(http, sim, request_body())
    failed = await post(http, sim, request_body())
    ok = await post(http, sim, request_body())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "server_error"
    assert ok.status_code == 200
    assert [r.fault for r in sim.requests] == ["rate_limit", "server_error", None]


async def test_mid_stream_error_event(sim: OpenAISimulator, http: httpx2.AsyncClient) -> None:
    sim.faults = Faults(mid_stream_error_times=1, mid_stream_error_after=2)
    response = await post(http, sim, request_body(stream=True))
    events = parse_events(response.content)
    assert len(events) == 3
    assert "[DONE]" not in events
    assert set(events[-1]) == {"error"}
    assert events[-1]["error"]["type"] == "server_error"
    assert sim.requests[0].outcome == "error_event"


async def test_rules_call_an_offered_tool_else_speak(
    sim: OpenAISimulator, http: httpx2.AsyncClient
) -> None:
    tools = [{"type": "function", "function": {"name": "transfer_to_human", "parameters": {}}}]
    with_tool = await post(http, sim, request_body("Can I talk to a manager?", tools=tools))
    without = await post(http, sim, request_body("Can I talk to a manager?"))
    unknown = await post(http, sim, request_body("Tell me a story"))
    after_tool = await post(
        http,
        sim,
        {
            "model": "gpt-test",
            "messages": [
                {"role": "user", "content": "manager please"},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            ],
            "tools": tools,
        },
    )
    message = with_tool.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "transfer_to_human"
    assert "connect you" in without.json()["choices"][0]["message"]["content"]
    assert unknown.json()["choices"][0]["message"]["content"] == FALLBACK_TEXT
    assert after_tool.json()["choices"][0]["message"]["content"] == AFTER_TOOL_TEXT


async def _read_line(stream: asyncio.StreamReader) -> str:
    async with asyncio.timeout(20):
        return (await stream.readline()).decode()


async def test_simulate_command_serves_until_sigterm(http: httpx2.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(sys.executable).with_name("realtime-voice")
    command = (
        [str(script)]
        if script.is_file()
        else [
            sys.executable,
            "-c",
            "import sys; from realtime_voice.cli import main; sys.exit(main())",
        ]
    )
    proc = await asyncio.create_subprocess_exec(
        *command,
        "simulate",
        "openai",
        "--port",
        str(port),
        "--reply",
        "Always this.",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await _read_line(proc.stdout)
        assert f"http://127.0.0.1:{port}/v1" in line
        response = await http.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", json=request_body(), headers=AUTH
        )
        assert response.json()["choices"][0]["message"]["content"] == "Always this."
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
