"""CPU cost of understanding one caller turn: `analyze` and the whole template turn.

Run: ``python loadtests/bench_nlp.py [--turns 20000] [--runs 5]``

Two rows per flow, each the median over ``--runs`` runs of ``--turns`` turns cycled
from a corpus of phone-length utterances (the kind each flow hears):

- ``analyze``: NLP only (intent against the stage's intent set, tone, every entity);
- ``turn``: what `FlowResponder.respond` adds for a template answer: NLP, the flow
  engine (slots, rules, transitions) and rendering the reply, on a fresh call each
  time, no LLM.

Figures are µs per turn on this machine (``time.perf_counter_ns``); the session's
budget for the whole turn is tens of milliseconds, so anything under a millisecond is
noise next to speech recognition and synthesis.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import statistics
import sys
import time

from ai_pipeline.flow_responder import FlowResponder
from ai_pipeline.flow_schema import load_flows
from ai_pipeline.nlp import analyze
from ai_pipeline.responder import ConversationContext, UserTurn

__all__ = ["main"]

NOW = dt.datetime(2025, 6, 11, 14, 0, tzinfo=dt.UTC)

CORPUS: dict[str, tuple[str, list[str]]] = {
    "real_estate": (
        "intro",
        [
            "Yes, sure",
            "It's for my family to live in",
            "Within the next three months",
            "I need to discuss with my wife first",
            "That sounds too expensive, my budget is around eighty lakhs",
            "Sure, Saturday works, maybe around eleven in the morning",
            "I'm driving right now, can you call me back tomorrow evening?",
            "No, I'm not interested, please don't call again",
        ],
    ),
    "service_appointments": (
        "intent_detection",
        [
            "Hi, I need to schedule an oil change",
            "Tomorrow at two would be great",
            "I am Maria Lopez, my number is five five five, one two three, four five six seven",
            "What are your hours on Saturday?",
            "This is ridiculous, my car is still making the same noise!",
            "Can I speak to a manager please",
        ],
    ),
    "restaurant": (
        "start",
        [
            "Hi, I'd like to book a table for four tomorrow at 7:30 p.m.",
            "What time do you open on Sundays?",
            "There will be six of us, next Friday evening",
            "Put it under Patel, please",
            "Uh-huh",
        ],
    ),
    "persona": (
        "chat",
        [
            "How much does a consultation cost?",
            "Do you have parking near the clinic?",
            "Okay thank you so much, bye",
        ],
    ),
}
DOCUMENTS = (
    "Sunrise Clinic is open from 9 AM to 6 PM on weekdays. A general consultation costs "
    "500 rupees. Parking is free for patients."
)


def _median_us(samples_ns: list[float], turns: int) -> float:
    return statistics.median(samples_ns) / turns / 1000


def bench_analyze(turns: int, runs: int) -> dict[str, float]:
    flows = load_flows()
    results: dict[str, list[float]] = {name: [] for name in CORPUS}
    for _ in range(runs):
        for name, (stage, lines) in CORPUS.items():
            intents = flows[name].stages[stage].intents
            start = time.perf_counter_ns()
            for i in range(turns):
                analyze(lines[i % len(lines)], intents, now=NOW)
            results[name].append(time.perf_counter_ns() - start)
    return {name: _median_us(samples, turns) for name, samples in results.items()}


async def _turns(bot: FlowResponder, name: str, lines: list[str], turns: int) -> int:
    start = time.perf_counter_ns()
    for i in range(turns):
        ctx = ConversationContext(
            call_id="bench", custom_parameters={"flow": name, "documents": DOCUMENTS}
        )
        async for _ in bot.respond(UserTurn(lines[i % len(lines)]), ctx):
            pass
    return time.perf_counter_ns() - start


def bench_turns(turns: int, runs: int) -> dict[str, float]:
    bot = FlowResponder(load_flows(), default_flow="restaurant", clock=lambda: NOW)
    results: dict[str, list[float]] = {name: [] for name in CORPUS}
    for _ in range(runs):
        for name, (_, lines) in CORPUS.items():
            results[name].append(asyncio.run(_turns(bot, name, lines, turns)))
    return {name: _median_us(samples, turns) for name, samples in results.items()}


def main(argv: list[str] | None = None) -> int:
    """Print µs per turn for each shipped flow."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.CRITICAL)  # the responder logs every turn at INFO
    analyze_us = bench_analyze(args.turns, args.runs)
    turn_us = bench_turns(max(1, args.turns // 4), args.runs)
    print(f"python {platform.python_version()} on {platform.machine()}, {args.runs} runs")
    print(f"{'flow':<22}{'analyze µs/turn':>18}{'turn µs/turn':>16}")
    for name in CORPUS:
        print(f"{name:<22}{analyze_us[name]:>18.1f}{turn_us[name]:>16.1f}")
    overall = statistics.mean(analyze_us.values())
    print(f"{'mean':<22}{overall:>18.1f}{statistics.mean(turn_us.values()):>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
