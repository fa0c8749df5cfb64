"""Warm the stack up before a measured run: one untimed call per script rotation.

The simulators do expensive work once and reuse it (the Deepgram simulator synthesizes
each distinct line of the bot once, then replays it), so the first calls of a cold stack
answer slowly, and on a busy machine the server's TTS deadline may even send them to
its fallback voice. A load test measures steady state, so `warm_up` first places one
call per starting line of the scripted transcripts, all at once, with the project's own
asyncio `SimulatedCaller` (this runs before locust, in the runner's process, which gevent
does not patch). Nothing is measured; only whether each call connected is returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from locust_voice.fixtures import UTTERANCES, load_utterance
from locust_voice.scripts import Step
from realtime_voice.testing.caller import CallerLine, CallOptions, CallSetupError, SimulatedCaller

__all__ = ["warm_up"]


def _lines(script: Sequence[Step]) -> list[CallerLine]:
    return [
        CallerLine(
            text=UTTERANCES[step.utterance],
            audio=load_utterance(step.utterance),
            pause_before_s=step.pause_s,
            barge_in_after_s=step.barge_in_after_s,
        )
        for step in script
    ]


async def _calls(http_url: str, token: str, script: Sequence[Step], count: int) -> list[str]:
    async def one() -> str:
        options = CallOptions(
            http_url=http_url,
            verification_token=token,
            transcribe_bot=False,
            end_after_last_line_s=0.5,
            max_call_s=120.0,
        )
        try:
            report = await SimulatedCaller(options).run(_lines(script))
        except CallSetupError as exc:
            return f"warm-up call failed: {exc}"
        return f"warm-up call: {report.duration_s:.1f} s, ended by {report.ended_by}"

    return list(await asyncio.gather(*(one() for _ in range(count))))


def warm_up(http_url: str, token: str, script: Sequence[Step], count: int) -> list[str]:
    """Place ``count`` concurrent calls following ``script``; one line per call says how it went.

    Args:
        http_url: the server's HTTP control plane.
        token: the webhook ``Verification-Token``.
        script: what the callers say.
        count: how many calls (the number of scripted transcripts covers every rotation).
    """
    return asyncio.run(_calls(http_url, token, script, count))
