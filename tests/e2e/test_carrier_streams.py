"""Telnyx, Plivo and Vonage calls end to end: each carrier's answer webhook, its stream
through the real server and the offline engines, and transfer and hang-up through the
carrier's REST API (its protocol-faithful simulator), which is the only way those
streams can hand a caller over or end a call.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from realtime_voice.config_carriers import CarrierSettings
from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.call_report import CallReport
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.plivo_sim import PlivoApiSimulator
from realtime_voice.testing.telnyx_sim import TelnyxApiSimulator
from realtime_voice.testing.vonage_sim import VonageApiSimulator

from .conftest import operator_headers

pytestmark = pytest.mark.e2e

CARRIERS = ("telnyx", "plivo", "vonage")
TRANSFER_NUMBER = "+15555550100"
TELNYX_KEY = "KEYe2e0123456789abcdef"
PLIVO_ID, PLIVO_TOKEN = "MAE2E0123456789ABCDE", "plivo-e2e-auth-token-0123456789"
VONAGE_APP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@dataclass
class Rig:
    server: VoiceServer
    telnyx: TelnyxApiSimulator
    plivo: PlivoApiSimulator
    vonage: VonageApiSimulator


@pytest.fixture
async def rig(make_server: Any) -> AsyncIterator[Rig]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    telnyx = TelnyxApiSimulator(TELNYX_KEY)
    vonage = VonageApiSimulator(VONAGE_APP, public_pem)
    async with PlivoApiSimulator(PLIVO_ID, PLIVO_TOKEN) as plivo:
        telnyx_url = await telnyx.start()
        vonage_url = await vonage.start()
        try:
            server: VoiceServer = await make_server(
                carriers=CarrierSettings(
                    telnyx_api_key=TELNYX_KEY, telnyx_api_url=telnyx_url,
                    plivo_auth_id=PLIVO_ID, plivo_auth_token=PLIVO_TOKEN,
                    plivo_api_url=plivo.base_url,
                    vonage_application_id=VONAGE_APP, vonage_private_key=private_pem,
                    vonage_api_url=vonage_url,
                ),
            )
            yield Rig(server, telnyx, plivo, vonage)
        finally:
            await telnyx.close()
            await vonage.close()


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


async def place(rig: Rig, carrier: str, lines: list[CallerLine]) -> CallReport:
    # The carrier placed the call, so its API knows it (the simulators 404 others).
    if carrier == "telnyx":
        call_id = "v3:" + secrets.token_urlsafe(24)
        rig.telnyx.add_call(call_id)
    else:
        call_id = str(uuid.uuid4())
        (rig.plivo if carrier == "plivo" else rig.vonage).add_call(call_id)
    options = CallOptions(
        call_id=call_id,
        http_url=f"http://127.0.0.1:{rig.server.http_port}",
        protocol=carrier,  # type: ignore[arg-type]
        max_call_s=60.0,
        end_after_last_line_s=2.0,
        # Plivo signs its answer request with the auth token the server checks.
        signing_key=PLIVO_TOKEN if carrier == "plivo" else None,
    )
    report = await SimulatedCaller(options).run(lines)
    await rig.server.manager.wait_idle()
    return report


async def stored_call(rig: Rig, call_id: str) -> dict[str, Any]:
    await rig.server.recorder.flush()
    async with aiohttp.ClientSession(headers=operator_headers()) as http, http.get(
        f"http://127.0.0.1:{rig.server.http_port}/api/calls/{call_id}"
    ) as resp:
        assert resp.status == 200
        record: dict[str, Any] = await resp.json()
    return record


def rest_actions(rig: Rig, carrier: str, call_id: str) -> list[tuple[str, str]]:
    """What the carrier's REST API was asked to do with the call: (action, number)."""
    if carrier == "telnyx":
        return [
            (r.action, str((r.body or {}).get("to", "")))
            for r in rig.telnyx.requests if r.call_control_id == call_id and r.status < 300
        ]
    if carrier == "plivo":
        return [
            ("transfer" if r.method == "POST" else "hangup", r.body.get("aleg_url", ""))
            for r in rig.plivo.requests if r.call_uuid == call_id and r.status < 300
        ]
    actions = []
    for r in rig.vonage.requests:
        if r.call_uuid == call_id and r.status < 300:
            body = r.body or {}
            actions.append((str(body.get("action")), str(body.get("destination", ""))))
    return actions


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_a_transfer_goes_through_the_carriers_api(
    rig: Rig, carrier: str
) -> None:
    report = await place(
        rig,
        carrier,
        [CallerLine("Can I speak to a manager please?")],
    )
    assert [m.name for m in report.marks_received][:1] == ["greeting_done"]
    handoff = words(report.bot_utterances[-1].text)
    assert "transfer" in handoff or "manager" in handoff, handoff
    assert not report.unexpected and not report.errors
    # The stream has no transfer message: the carrier's REST API was asked to move the
    # call to the transfer number, after the handoff line had played.
    actions = rest_actions(rig, carrier, report.call_id)
    assert [a for a, _ in actions] == ["transfer"], actions
    number = actions[0][1]
    assert TRANSFER_NUMBER.lstrip("+") in number.replace("%2B", "+"), actions
    record = await stored_call(rig, report.call_id)
    assert record["protocol"] == carrier
    assert record["end_reason"] == "transferred"
    assert "manager" in words(record["turns"][1]["text"])


# Hang-up takes the same path through the leg for every carrier (each REST client's own
# hang-up is tested in tests/integration/test_<carrier>_control.py); Vonage is the one
# whose call would not end with its stream, so it is the one proven end to end.
@pytest.mark.parametrize("carrier", ["vonage"])
async def test_goodbye_hangs_up_through_the_carriers_api(rig: Rig, carrier: str) -> None:
    report = await place(rig, carrier, [CallerLine("That's all, thank you, goodbye.")])
    assert report.close_code == 1000
    actions = rest_actions(rig, carrier, report.call_id)
    assert [a for a, _ in actions] == ["hangup"], actions
    record = await stored_call(rig, report.call_id)
    assert record["protocol"] == carrier and record["end_reason"] == "completed"
