"""What one scripted five-minute call costs: usage and estimated dollars per provider.

Starts a `LocalStack` (the server with the real Deepgram and OpenAI SDKs pointed at the
simulators; the Deepgram simulator really recognises the caller's audio, so the flow
sees what was said), places one restaurant call whose caller keeps talking (bookings,
questions the templates answer, questions only the model can answer) until
``--minutes`` have passed, then prints what the server stored with the call: audio
seconds streamed to the recogniser, characters synthesised, model tokens, and the
estimate at the ``VOICE_PRICE_*`` prices (list prices unless set in the environment).

    python loadtests/cost_of_call.py                 # 5 minutes
    python loadtests/cost_of_call.py --minutes 1

Tokens come from the OpenAI simulator, which counts about four characters per token of
the real prompt (system prompt, flow context and history): the same order as a real
tokenizer, not the exact figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import LocalStack

from realtime_voice.security.operator_token import read_token_file
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller

# A caller who books, asks what the templates know, and asks what only the model knows.
SCRIPT = (
    "Hi, what time do you open tomorrow?",
    "Do you have parking near the restaurant?",
    "I'd like to book a table for four people.",
    "Tomorrow at seven in the evening.",
    "Yes, that's right.",
    "Is there a vegetarian menu?",
    "Can I bring my dog on the terrace?",
    "Do you do birthday cakes if I call ahead?",
    "What's the address again?",
    "Are you open on Sunday?",
    "Is the kitchen open late on Fridays?",
    "Do you have gluten free pasta?",
    "How long does a dinner for four usually take?",
    "Can we sit by the window?",
    "Do you take credit cards?",
)


async def place_call(http_url: str, minutes: float) -> str:
    lines = [CallerLine(text, pause_before_s=1.5) for text in SCRIPT * 6]
    options = CallOptions(
        http_url=http_url,
        max_call_s=minutes * 60,
        end_after_last_line_s=2.0,
        reply_timeout_s=30.0,
        transcribe_bot=False,
    )
    report = await SimulatedCaller(options).run(lines)
    return report.call_id


def fetch_json(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        doc: dict[str, Any] = json.load(resp)
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="call length (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="stack logs (default: temp dir)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="cost-of-call-"))
    with LocalStack(out, scripted_stt=False, llm_first_token_ms=300) as stack:
        call_id = asyncio.run(place_call(stack.http_url, args.minutes))
        # The server runs in the stack's directory and generated its operator token there.
        token = read_token_file(out / "var" / "api-token")
        record: dict[str, Any] = {}
        for _ in range(50):  # the recorder writes in batches off the hot path
            record = fetch_json(f"{stack.http_url}/api/calls/{call_id}", token)
            if record.get("cost_usd") is not None:
                break
            asyncio.run(asyncio.sleep(0.2))
    usage = record.get("usage") or {}
    cost = usage.get("cost_usd") or {}
    turns = record.get("turns") or []
    print(f"call {call_id}: {record.get('duration_s', 0):.0f} s, outcome {record.get('outcome')}")
    print(
        f"turns: {sum(1 for t in turns if t['speaker'] == 'caller')} caller, "
        f"{sum(1 for t in turns if t['speaker'] == 'bot')} bot"
    )
    rows = [
        ("stt", f"{usage.get('stt_audio_seconds', 0):.1f} audio s", cost.get("stt", 0)),
        ("tts", f"{usage.get('tts_characters', 0)} characters", cost.get("tts", 0)),
        (
            "llm",
            f"{usage.get('llm_prompt_tokens', 0)} in + "
            f"{usage.get('llm_completion_tokens', 0)} out tokens "
            f"({usage.get('llm_requests', 0)} requests)",
            cost.get("llm", 0),
        ),
        ("telephony", f"{usage.get('call_seconds', 0):.1f} call s", cost.get("telephony", 0)),
        ("total", "", cost.get("total", 0)),
    ]
    for name, amount, dollars in rows:
        print(f"{name:<10} {amount:>42} {dollars:>10.4f} $")
    print(f"(logs and database in {out})")
    return 0 if record.get("cost_usd") is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
