"""The server's log of a full call holds no secret and no phone number, and names the call.

``realtime-voice serve`` runs as a child exactly as in production (JSON lines), but at
DEBUG, with every secret configured and used: Deepgram and OpenAI keys (against their
simulators), the stream secret and the token it hands out, the calls API token, the
RingCentral verification token and the Twilio auth token. Everything the process writes
(every logger: ours, the SDKs', websockets', aiohttp's) is then searched (README
"Configuration", docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from realtime_voice.security.twilio_signature import twilio_signature
from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.deepgram_sim import DeepgramSimulator, SimFaults
from realtime_voice.testing.deepgram_sim_scripted import ScriptedSpeech
from realtime_voice.testing.openai_sim import OpenAISimulator
from realtime_voice.testing.ringcentral_notify import post_notification, telephony_notification
from tests.e2e.process_helpers import ServeProcess, free_ports, serve_env

pytestmark = pytest.mark.e2e

SECRETS = {
    "DEEPGRAM_API_KEY": "dg-sim-key-7f3a9c1e55",
    "OPENAI_API_KEY": "sk-sim-openai-5b2d8e4f66",
    "VOICE_STREAM_SECRET": "stream-secret-9c4e1a7b2d6f",
    "VOICE_API_TOKEN": "api-token-3e8b5c1d9a77",
    "RC_WEBHOOK_VERIFICATION_TOKEN": "rc-verify-6d2f8a4c88",
    "TWILIO_AUTH_TOKEN": "twilio-auth-1a9e5c3b7d99",
}
CALLER = "+14155550123"
DIALLED = "+16505550100"
QUESTION = "Do you have parking?"
REPLY = "Yes, there is free parking behind the restaurant."


@dataclass(frozen=True)
class LogLine:
    level: str
    logger: str
    call_id: str
    msg: str
    transcript: bool
    raw: str


def parse_log(text: str) -> Iterator[LogLine]:
    """Every line the server wrote to stderr, each of which must be one JSON object."""
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            entry: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError:
            raise AssertionError(f"a line bypassed the JSON formatter: {raw!r}") from None
        yield LogLine(
            level=entry["level"],
            logger=entry["logger"],
            call_id=entry["call_id"],
            msg=entry["msg"] + "\n" + entry.get("exc", ""),
            transcript=entry.get("transcript", False),
            raw=raw,
        )


def number_forms(number: str) -> list[str]:
    """The ways a full number could be written: E.164, bare digits, national, URL-encoded."""
    digits = number.lstrip("+")
    return [number, digits, digits[1:], "%2B" + digits]


@pytest.fixture
async def simulators() -> AsyncIterator[tuple[DeepgramSimulator, OpenAISimulator]]:
    # Scripted transcripts keep the recogniser out of the test process. Aura fails every
    # request, so the server's own voice speaks from its worker pool: those threads' lines
    # must carry the call id too.
    deepgram = DeepgramSimulator(
        api_key=SECRETS["DEEPGRAM_API_KEY"],
        scripted=ScriptedSpeech(sentences=(QUESTION,)),
        faults=SimFaults(speak_fail_status=500),
    )
    openai = OpenAISimulator(api_key=SECRETS["OPENAI_API_KEY"])
    try:
        yield deepgram, openai
    finally:
        await deepgram.close()
        await openai.close()


async def test_a_full_call_logs_no_secret_no_number_and_names_the_call(
    tmp_path: Path, simulators: tuple[DeepgramSimulator, OpenAISimulator]
) -> None:
    deepgram, openai = simulators
    dg_http, dg_ws = await deepgram.start()
    openai_url = await openai.start()
    openai.script(REPLY)
    http_port, media_port = free_ports(2)
    base = f"http://127.0.0.1:{http_port}"
    server = ServeProcess(
        tmp_path,
        serve_env(
            http_port,
            media_port,
            VOICE_LOG_LEVEL="debug",
            VOICE_LOG_FORMAT="json",
            DEEPGRAM_BASE_URL=dg_http,
            DEEPGRAM_WS_URL=dg_ws,
            OPENAI_BASE_URL=openai_url,
            VOICE_PUBLIC_HTTP_URL=base,
            **SECRETS,
        ),
    )
    handed_out: list[str] = []
    try:
        await server.wait_ready()
        report = await SimulatedCaller(
            CallOptions(
                http_url=base,
                from_number=CALLER,
                to_number=DIALLED,
                verification_token=SECRETS["RC_WEBHOOK_VERIFICATION_TOKEN"],
                transcribe_bot=False,
                max_call_s=120.0,
                reply_timeout_s=60.0,
                end_after_last_line_s=1.0,
            )
        ).run([CallerLine(QUESTION)])
        handed_out += parse_qs(urlsplit(report.media_url).query)["token"]
        assert report.bot_utterances[1:], "the bot never answered"
        async with aiohttp.ClientSession() as http:
            await wait_recorded(http, base, report.call_id)
            # The call's last line: what follows is other requests' (see "during" below).
            await server.wait_log(
                lambda raw: report.call_id in raw and "call ended:" in raw, deadline_s=30.0
            )
            handed_out.append(await twilio_answer(http, base))
            status = await post_notification(
                http,
                f"{base}/api/ringcentral/webhook",
                telephony_notification(
                    telephony_session_id="s-log-safety",
                    party_id="p-1",
                    sequence=1,
                    status="Proceeding",
                    from_number=CALLER,
                    to_number=DIALLED,
                ),
                SECRETS["RC_WEBHOOK_VERIFICATION_TOKEN"],
            )
            assert status == 200
        server.send_signal()
        assert await server.wait_exit(30.0) == 0
    finally:
        server.kill()
    assert any(r.status == 200 for r in openai.requests), "the LLM was never asked"

    output = server.stderr + server.stdout
    for name, value in [*SECRETS.items(), *(("stream token", t) for t in handed_out)]:
        assert value not in output, f"{name} was written to the log"
    for number in (CALLER, DIALLED):
        for form in number_forms(number):
            assert form not in output, f"{form} was written to the log"
    assert "+1******0123" in output  # masked, not dropped: ops still see which call

    lines = list(parse_log(server.stderr))
    mine = [i for i, line in enumerate(lines) if line.call_id == report.call_id]
    during = lines[mine[0] : mine[-1] + 1]
    assert {line.logger.split(".")[0] for line in during} >= {"realtime_voice", "ai_pipeline"}
    # A line naming another call (the Twilio answer below) is named; "-" is a line that
    # lost its call's id on the way (a thread, a callback, an SDK logger).
    nameless = [line.raw for line in during if line.call_id == "-"]
    assert not nameless, "lines logged during the call without its id:\n" + "\n".join(nameless)

    # Transcripts: written (the log is useful at DEBUG), but only at DEBUG.
    said = [line for line in lines if line.transcript]
    assert any("parking" in line.msg.lower() for line in said if "caller" in line.msg)
    assert any(REPLY in line.msg for line in said)
    loud = [line.raw for line in lines if line.level != "DEBUG" and "parking" in line.msg.lower()]
    assert not loud, "words of the call above DEBUG:\n" + "\n".join(loud)


async def wait_recorded(http: aiohttp.ClientSession, base: str, call_id: str) -> None:
    """Read the ended call's record through the calls API (refused without the API token)."""
    url = f"{base}/api/calls/{call_id}"
    async with http.get(url) as resp:
        assert resp.status == 401
    headers = {"Authorization": f"Bearer {SECRETS['VOICE_API_TOKEN']}"}
    async with asyncio.timeout(30.0):
        while True:
            async with http.get(url, headers=headers) as resp:
                body = await resp.json() if resp.status == 200 else {}
                assert resp.status in (200, 404), await resp.text()
            if body.get("ended_at"):
                return
            await asyncio.sleep(0.05)


async def twilio_answer(http: aiohttp.ClientSession, base: str) -> str:
    """A signed Twilio incoming-call request; returns the stream token of the TwiML."""
    url = f"{base}/api/voice/twilio/incoming"
    form = [("CallSid", "CA" + "7" * 32), ("From", CALLER), ("To", DIALLED)]
    signature = twilio_signature(SECRETS["TWILIO_AUTH_TOKEN"], url, form)
    async with http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as resp:
        assert resp.status == 200
        twiml = await resp.text()
    token = twiml.split('name="token" value="')[1].split('"')[0]
    return token


async def test_transcripts_are_written_at_info_when_enabled(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(log_transcripts=True)
    assert isinstance(server, VoiceServer)
    caplog.set_level(logging.INFO)
    report = await SimulatedCaller(
        CallOptions(
            http_url=f"http://127.0.0.1:{server.http_port}",
            transcribe_bot=False,
            max_call_s=120.0,
            reply_timeout_s=60.0,
            end_after_last_line_s=1.0,
        )
    ).run([CallerLine("What time do you open?")])
    await server.manager.wait_idle()
    assert report.bot_utterances[1:], "the bot never answered"
    said = [r for r in caplog.records if getattr(r, "transcript", False)]
    assert all(r.levelno == logging.INFO for r in said)
    assert any("caller said" in r.getMessage() and "open" in r.getMessage() for r in said)
    assert any(r.getMessage().startswith("bot says: ") for r in said)
