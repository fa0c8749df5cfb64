"""SIGTERM in the middle of calls on a ``realtime-voice serve`` child process.

The server runs as an operator starts it. Two calls are live when it is told to stop: one
quiet, one while the bot is answering. After the drain timeout both must hear the goodbye
and get one hang-up, the process must exit 0 without a traceback, and both calls must be
in the database, ended for ``server_shutdown``, with what the caller heard of the cut
answer and the goodbye.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from realtime_voice.storage import CallStore
from realtime_voice.storage.models import Call
from realtime_voice.testing.speech import caller_audio
from tests.integration.db_fixtures import database_url

from .fault_rig import GREETING, SpeakingGateway
from .process_helpers import ServeProcess, free_ports, post_inbound, serve_env

__all__ = ["database_url"]  # the fixture, imported for pytest

pytestmark = pytest.mark.e2e

START_DEADLINE_S = 90.0
CALL_DEADLINE_S = 60.0
GOODBYE = "I'm sorry, we have to end this call now. Please call back later. Goodbye."


@pytest.fixture
async def serve(tmp_path: Path, database_url: str) -> AsyncIterator[ServeProcess]:
    """A ``realtime-voice serve`` child recording to ``database_url``; killed afterwards."""
    http_port, media_port = free_ports(2)
    env = serve_env(http_port, media_port, DATABASE_URL=database_url, VOICE_DRAIN_TIMEOUT="1")
    child = ServeProcess(tmp_path, env)
    try:
        await child.wait_ready(START_DEADLINE_S)
        yield child
    finally:
        child.kill()


def turns(call: Call) -> list[tuple[str, str, bool]]:
    """The call's turns as (speaker, text, interrupted), in order."""
    return [(t.speaker, t.text, t.interrupted) for t in sorted(call.turns, key=lambda t: t.seq)]


async def test_sigterm_mid_calls_says_goodbye_hangs_up_saves_and_exits_0(
    serve: ServeProcess, database_url: str
) -> None:
    urls = {}
    for call_id in ("call-term-quiet", "call-term-talking"):
        status, answer = await post_inbound(serve.http_port, call_id)
        assert status == 200, answer
        urls[call_id] = answer["media"]["url"]
    question = await caller_audio("What time do you open?")  # a long answer: the hours
    params = {"greeting_text": GREETING}

    async with (
        SpeakingGateway.open(urls["call-term-quiet"], params) as quiet,
        SpeakingGateway.open(urls["call-term-talking"], params) as talking,
    ):
        async with asyncio.timeout(CALL_DEADLINE_S):
            await quiet.wait_for(lambda: "greeting_done" in quiet.marks())
            await talking.wait_for(lambda: "greeting_done" in talking.marks())
            talking.say(question)
            await talking.wait_for(lambda: talking.audio_frames_after_mark("greeting_done") > 0)
            serve.send_signal(signal.SIGTERM)
            codes = [await gateway.wait_closed() for gateway in (quiet, talking)]
    assert codes == [1000, 1000]
    assert await serve.wait_exit(timeout_s=CALL_DEADLINE_S) == 0
    assert "Traceback" not in serve.stderr

    for gateway in (quiet, talking):
        controls = gateway.control_frames()
        # The goodbye played to its mark, then exactly one hang-up, then nothing.
        assert controls[-2:] == [
            {"type": "mark", "name": "goodbye_done"},
            {"type": "hangup", "reason": "server_shutdown"},
        ], controls
        assert [c["type"] for c in controls].count("hangup") == 1
    # The answer was still playing when the goodbye was due: it was cut for it.
    assert {"type": "clear"} in talking.control_frames()

    store = CallStore(database_url)
    try:
        calls = {call_id: store.get_call_sync(call_id) for call_id in urls}
    finally:
        store.close()
    for call in calls.values():
        assert call is not None
        assert (call.state, call.end_reason) == ("ended", "server_shutdown")
        assert call.outcome == "interrupted" and call.ended_at is not None
        assert turns(call)[0] == ("bot", GREETING, False)
        assert turns(call)[-1] == ("bot", GOODBYE, False)
    talked = calls["call-term-talking"]
    assert talked is not None
    caller, cut = turns(talked)[1:3]
    assert caller[:2] == ("caller", "What time do you open?")
    assert cut[0] == "bot" and cut[2] is True  # what the caller heard, marked interrupted
