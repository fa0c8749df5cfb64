"""Exotel calls end to end: the Voicebot applet's dynamic URL, then its stream, through the
real server and the offline engines; and the two Exotel systems this product grew from
(seed 000's lead qualifier, seed 002's Go voicebot) speaking to it as they did.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.call_report import CallReport
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller

from .conftest import operator_headers

pytestmark = pytest.mark.e2e

KEY, TOKEN = "exo-key-1234", "exo-token-5678"
LEAD = {
    "lead_id": 1,
    "lead_name": "Rajesh Kumar",
    "phone": "+919876543210",
    "property_type": "3BHK",
    "location": "Whitefield",
    "budget": 8000000,
}
PERSONA = {
    "persona_name": "Ananya",
    "persona_age": "28",
    "tone": "warm",
    "gender": "female",
    "city": "Pune",
    "language": "English",
    "documents": "",
    "customer_name": "Vikram",
    "greeting_text": "Hello Vikram, this is Ananya from the Pune office.",
}


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


async def place(server: VoiceServer, lines: list[CallerLine], **options: Any) -> CallReport:
    settings: dict[str, Any] = {
        "max_call_s": 60.0,
        "end_after_last_line_s": 2.0,
        "protocol": "exotel",
        **options,
    }
    opts = CallOptions(http_url=f"http://127.0.0.1:{server.http_port}", **settings)
    report = await SimulatedCaller(opts).run(lines)
    await server.manager.wait_idle()
    return report


async def stored_call(server: VoiceServer, call_id: str) -> dict[str, Any]:
    await server.recorder.flush()
    async with aiohttp.ClientSession(headers=operator_headers()) as http, http.get(
        f"http://127.0.0.1:{server.http_port}/api/calls/{call_id}"
    ) as resp:
        assert resp.status == 200
        record: dict[str, Any] = await resp.json()
    return record


async def test_exotel_call_answers_a_question_and_ends_by_closing_the_stream(
    server: VoiceServer,
) -> None:
    report = await place(
        server,
        [CallerLine("What time do you open?"), CallerLine("Thank you, goodbye.")],
        call_id="c3a1e0f2b7d94c5e8f1a2b3c4d5e6f70",
    )
    assert [m.name for m in report.marks_received][:1] == ["greeting_done"]
    answer = words(report.bot_utterances[1].text)
    assert any(w in answer for w in ("open", "tuesday", "sunday", "hours")), answer
    # Exotel has no hang-up message: the stream closes after the last words and the
    # applet flow moves on (to a Hangup applet).
    assert report.close_code == 1000
    assert report.hangup_reason is None
    assert not report.unexpected and not report.errors
    record = await stored_call(server, report.call_id)
    assert record["protocol"] == "exotel"
    assert record["end_reason"] == "completed"
    assert "open" in words(record["turns"][1]["text"])


async def test_seed_000_lead_context_in_custom_field_drives_the_real_estate_flow(
    make_server: Any,
) -> None:
    # Seed 000's flow points the applet at wss://KEY:TOKEN@host/media and sends the lead
    # as JSON text in customField on `connected`; the flow is named in the applet URL.
    server: VoiceServer = await make_server(
        carriers=_exotel_credentials(),
    )
    report = await place(
        server,
        [CallerLine("Yes, sure, I have a couple of minutes.")],
        custom_parameters={k: str(v) for k, v in LEAD.items()},
        exotel_seed_000=True,
        basic_auth=(KEY, TOKEN),
        media_url=f"ws://127.0.0.1:{server.media_port}/media?flow=real_estate",
    )
    assert "rajesh" in words(report.bot_utterances[0].text)  # heard by the caller
    assert len(report.bot_utterances) >= 2  # the flow went on past the introduction
    record = await stored_call(server, report.call_id)
    assert record["protocol"] == "exotel"
    greeting = record["turns"][0]["text"]  # what the bot said, as written
    for fact in ("Rajesh", "3BHK", "Whitefield"):
        assert fact in greeting, greeting


async def test_seed_002_voicebot_init_gives_was_at_16_khz_in_640_byte_chunks(
    server: VoiceServer,
) -> None:
    # Seed 002: Exotel asks /voicebot/init, is told wss://.../was?sample-rate=16000&..., and
    # sends a start with custom_parameters at the top level and no start object.
    base = f"http://127.0.0.1:{server.http_port}"
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/voicebot/init?flow=persona",
        data={"CallSid": "e2e-seed-002", "CallFrom": "+919812345678", "CallTo": "+918047491899"},
    ) as resp:
        assert resp.status == 200
        answer = await resp.json()
    url = answer["websocket_url"]
    assert url == answer["url"]
    assert "/was?" in url and "sample-rate=16000" in url and "call_sid=e2e-seed-002" in url
    chunks: list[int] = []
    marks: list[str] = []
    async with connect(url, proxy=None) as ws:
        await ws.send(json.dumps({"event": "connected"}))
        await ws.send(json.dumps(
            {"event": "start", "stream_sid": "MZseed002", "custom_parameters": PERSONA}
        ))
        async for message in ws:
            obj = json.loads(message)
            assert obj["stream_sid"] == "MZseed002"
            if obj["event"] == "media":
                chunks.append(len(base64.b64decode(obj["media"]["payload"])))
            elif obj["event"] == "mark":
                marks.append(obj["mark"]["name"])
                await ws.send(message)  # echo: played
                break
        await ws.send(json.dumps({"event": "stop", "stream_sid": "MZseed002"}))
    await server.manager.wait_idle()
    assert marks == ["greeting_done"]
    # 20 ms of 16-bit PCM at 16 kHz: seed 002's 640-byte chunks, and multiples of 320.
    assert chunks and set(chunks) == {640}, sorted(set(chunks))
    record = await stored_call(server, "e2e-seed-002")
    assert record["protocol"] == "exotel"
    assert "ananya" in words(record["turns"][0]["text"])  # the greeting_text was spoken
    assert record["from_number"] == "+919812345678"


async def test_seed_002_persona_call_at_16_khz(server: VoiceServer) -> None:
    report = await place(
        server,
        [CallerLine("Who am I speaking with?")],
        sample_rate=16000,
        custom_parameters={**PERSONA, "flow": "persona"},
    )
    # Heard through 16 kHz PCM and back: the greeting and an answer, both played.
    assert len(report.bot_utterances) >= 2
    assert "office" in words(report.bot_utterances[0].text) or "hello" in words(
        report.bot_utterances[0].text
    )
    assert not report.unexpected
    assert [m.name for m in report.marks_received][:2] == ["greeting_done", "response_1_done"]
    # What the persona flow said, as written (a name is no test of the recogniser).
    record = await stored_call(server, report.call_id)
    assert record["turns"][0]["text"] == PERSONA["greeting_text"]
    assert "Ananya" in record["turns"][2]["text"], record["turns"][2]["text"]


async def test_exotel_stream_without_token_or_credentials_is_refused(
    make_server: Any,
) -> None:
    server: VoiceServer = await make_server(carriers=_exotel_credentials())
    media = f"ws://127.0.0.1:{server.media_port}"
    # Wrong Basic credentials: refused before the upgrade.
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"{media}/api/voice/exotel/ws", proxy=None,
            additional_headers={"Authorization": "Basic " + base64.b64encode(b"x:y").decode()},
        ):
            pass
    assert refused.value.response.status_code == 401
    # No credentials and no token: the start is read, then the stream is refused.
    async with connect(f"{media}/api/voice/exotel/ws", proxy=None) as ws:
        await ws.send(json.dumps({"event": "connected"}))
        await ws.send(json.dumps({
            "event": "start", "stream_sid": "MZ1",
            "start": {"stream_sid": "MZ1", "call_sid": "CA-none"},
        }))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008
    assert ws.close_reason == "token missing"
    # The applet URL refuses a request without the credentials.
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{server.http_port}/api/voice/exotel/init", params={"CallSid": "CA1"}
    ) as resp:
        assert resp.status == 401
        assert "Basic credentials" in (await resp.json())["error"]
    assert server.manager.stats()["active_calls"] == 0


def _exotel_credentials() -> Any:
    from realtime_voice.config_carriers import CarrierSettings

    return CarrierSettings(exotel_api_key=KEY, exotel_api_token=TOKEN)


async def test_a_transfer_ends_the_stream_for_the_next_applet_and_is_recorded(
    server: VoiceServer,
) -> None:
    report = await place(server, [CallerLine("Can I speak to a manager please?")])
    handoff = words(report.bot_utterances[-1].text)
    assert "transfer" in handoff or "manager" in handoff, handoff
    # No transfer message on Exotel: the stream closes normally after the handoff line,
    # and the flow's next applet (Connect) takes the caller.
    assert report.transfer is None and report.close_code == 1000
    record = await stored_call(server, report.call_id)
    assert record["end_reason"] == "transferred", record["end_reason"]
