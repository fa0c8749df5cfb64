"""What our LLM client adds before the first sentence can go to TTS.

Starts the OpenAI simulator as its own process (``realtime-voice simulate openai``) with
the first token after 300 ms, then, over ~50 sequential requests, measures the time from
calling ``OpenAIChatModel.stream()`` to the first complete sentence out of
``SentenceSplitter``, and subtracts the simulated model time (the 300 ms, plus the
inter-token pauses up to that sentence when ``--token-delay-ms`` is not 0). What is left
is what the client side adds: the SDK, our wrapper, HTTP and the loopback, and the
simulator's own handling (with pauses between chunks, also asyncio's timer overshoot in
the simulator, about a millisecond per pause: keep the default 0 for the cleanest figure).

For scale, the same requests are also made with bare ``httpx2`` and a hand-written SSE
parse (no SDK, no wrapper): the difference between the two rows is the cost of the SDK
and our wrapper.

Run: ``python loadtests/bench_llm_first_sentence.py [--requests 50] [--first-token-ms 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2

from ai_pipeline.llm import ChatMessage, TextDelta
from ai_pipeline.openai_chat import OpenAIChatModel
from ai_pipeline.text_split import SentenceSplitter
from realtime_voice.testing.openai_sim_wire import split_tokens

REPLY = (
    "Sure, I can help you with that today. We have appointments open tomorrow morning "
    "and on Friday afternoon. Which one would suit you better?"
)
MESSAGES = [
    ChatMessage("system", "You are a friendly phone agent for a car service centre."),
    ChatMessage("user", "Hi, I'd like to book a service for my car."),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pieces_before_first_sentence(text: str) -> int:
    """Chunks the model must send (after the first) before the splitter emits a sentence."""
    splitter = SentenceSplitter()
    for i, piece in enumerate(split_tokens(text)):
        if splitter.push(piece):
            return i
    raise ValueError("the reply has no complete first sentence before its end")


async def start_simulator(
    port: int, first_token_ms: float, token_delay_ms: float
) -> asyncio.subprocess.Process:
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
        "--first-token-delay-ms",
        f"{first_token_ms:g}",
        "--token-delay-ms",
        f"{token_delay_ms:g}",
        "--reply",
        REPLY,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = await proc.stdout.readline()
    if b"listening" not in line:
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc


async def via_model(model: OpenAIChatModel) -> tuple[float, float]:
    """Seconds to the first delta and to the first sentence, through OpenAIChatModel."""
    splitter = SentenceSplitter()
    start = time.perf_counter()
    first_delta = first_sentence = 0.0
    async for item in model.stream(MESSAGES):
        if isinstance(item, TextDelta):
            now = time.perf_counter()
            first_delta = first_delta or now - start
            if not first_sentence and splitter.push(item.text):
                first_sentence = now - start
    return first_delta, first_sentence


async def via_raw_http(http: httpx2.AsyncClient, url: str) -> tuple[float, float]:
    """The same measurement with bare httpx2 and a minimal SSE parse (the floor)."""
    body = {
        "model": "bench",
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    splitter = SentenceSplitter()
    start = time.perf_counter()
    first_delta = first_sentence = 0.0
    headers = {"Authorization": "Bearer bench"}
    async with http.stream("POST", url, json=body, headers=headers) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                text = choice["delta"].get("content")
                if text:
                    now = time.perf_counter()
                    first_delta = first_delta or now - start
                    if not first_sentence and splitter.push(text):
                        first_sentence = now - start
    return first_delta, first_sentence


def summary(label: str, values_ms: list[float]) -> str:
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return (
        f"{label:<52} p50 {statistics.median(values_ms):7.2f} ms   p99 {cuts[98]:7.2f} ms"
        f"   max {max(values_ms):7.2f} ms"
    )


async def measure(
    name: str,
    once: Callable[[], Awaitable[tuple[float, float]]],
    args: argparse.Namespace,
    model_s: float,
) -> None:
    for _ in range(args.warmup):
        await once()
    deltas: list[float] = []
    sentences: list[float] = []
    for _ in range(args.requests):
        first_delta, first_sentence = await once()
        # The first content chunk follows the role chunk, one inter-token pause later.
        deltas.append((first_delta - (args.first_token_ms + args.token_delay_ms) / 1000) * 1000)
        sentences.append((first_sentence - model_s) * 1000)
    print(summary(f"{name}: first sentence minus model time", sentences))
    print(summary(f"{name}: first delta minus model time", deltas))


async def main(args: argparse.Namespace) -> None:
    k = pieces_before_first_sentence(REPLY)
    model_s = (args.first_token_ms + k * args.token_delay_ms) / 1000
    port = free_port()
    proc = await start_simulator(port, args.first_token_ms, args.token_delay_ms)
    base_url = f"http://127.0.0.1:{port}/v1"
    print(
        f"simulator: first token after {args.first_token_ms:g} ms, {args.token_delay_ms:g} ms "
        f"between chunks; first sentence complete at chunk {k + 1} "
        f"(simulated model time {model_s * 1000:.0f} ms); {args.requests} sequential requests "
        f"after {args.warmup} warm-up"
    )
    try:
        model = OpenAIChatModel(model="bench", base_url=base_url, api_key=None, deadline_s=10.0)
        try:
            await measure("OpenAIChatModel", lambda: via_model(model), args, model_s)
        finally:
            await model.aclose()
        async with httpx2.AsyncClient(timeout=10) as http:
            url = f"{base_url}/chat/completions"
            await measure("bare httpx2 (floor)", lambda: via_raw_http(http, url), args, model_s)
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--first-token-ms", type=float, default=300.0)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    asyncio.run(main(parser.parse_args()))
