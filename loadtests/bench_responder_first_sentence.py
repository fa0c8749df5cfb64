"""Final transcript → first sentence handed to TTS, through the whole flow responder.

The caller's turn goes through NLP, the flow engine (no template fits), the system prompt,
the OpenAI-compatible model (the OpenAI simulator, in this process, first token after
``--first-token-ms``), the sentence splitter, and out as the first ``SayText``, which is
what the session gives TTS. Printed: p50/p99 of that time minus the simulated model delay,
i.e. what the server itself adds (the in-process simulator's own work is included, so the
figure errs high).

Run: ``python loadtests/bench_responder_first_sentence.py [--turns 50] [--first-token-ms 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable

from ai_pipeline.responder import ConversationContext, SayText, TransferTarget, UserTurn
from realtime_voice.config import load_settings
from realtime_voice.server.wiring import build_responder
from realtime_voice.testing.openai_sim import Faults, OpenAISimulator

REPLY = "Yes, we have free parking right behind the restaurant. Is there anything else?"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--first-token-ms", type=float, default=300.0)
    args = parser.parse_args()

    sim = OpenAISimulator(
        faults=Faults(first_token_delay_ms=args.first_token_ms),
        fixed_reply=REPLY,
        token_delay_ms=0.0,
    )
    base_url = await sim.start()
    settings = dataclasses.replace(
        load_settings({}, dotenv=None), openai_base_url=base_url, openai_api_key="sk-bench"
    )
    closers: list[Callable[[], Awaitable[None]]] = []
    responder = build_responder(
        settings, TransferTarget(phone_number="+15555550100"), None, closers
    )
    added_ms: list[float] = []
    try:
        for i in range(args.turns + 3):
            ctx = ConversationContext(call_id=f"bench-{i}")
            responder.greeting(ctx)
            started = time.perf_counter()
            async with contextlib.aclosing(  # type: ignore[type-var]
                responder.respond(UserTurn("Do you have parking?"), ctx)
            ) as items:
                async for item in items:
                    if isinstance(item, SayText):
                        elapsed = (time.perf_counter() - started) * 1000
                        break
            if i >= 3:  # warm-up turns excluded
                added_ms.append(elapsed - args.first_token_ms)
    finally:
        for close in closers:
            await close()
        await sim.close()
    added_ms.sort()
    p99 = added_ms[min(len(added_ms) - 1, round(0.99 * (len(added_ms) - 1)))]
    print(f"command: python loadtests/bench_responder_first_sentence.py --turns {args.turns}")
    print(
        f"final transcript -> first sentence to TTS, minus the model's {args.first_token_ms:.0f} ms"
        f" first token, over {len(added_ms)} turns: p50 {statistics.median(added_ms):.1f} ms,"
        f" p99 {p99:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
