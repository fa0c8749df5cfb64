"""A RingCentral call end to end: notifications, media, escalation through Call Control, records."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.ringcentral_notify import WebhookNotifier
from realtime_voice.testing.ringcentral_sim import RingCentralSimulator

from .conftest import operator_headers

pytestmark = pytest.mark.e2e

VERIFY = "rc-verification-token-123"


async def test_manager_request_transfers_through_call_control(
    make_server: Callable[..., object],
) -> None:
    sim = RingCentralSimulator()
    await sim.start()
    try:
        server = await make_server(  # type: ignore[misc]
            rc_server_url=sim.url,
            rc_client_id=sim.client_id,
            rc_client_secret=sim.client_secret,
            rc_jwt_token=sim.jwt,
            rc_webhook_verification_token=VERIFY,
        )
        assert isinstance(server, VoiceServer)
        base = f"http://127.0.0.1:{server.http_port}"
        async with aiohttp.ClientSession() as http:
            notifier = WebhookNotifier(http, f"{base}/api/ringcentral/webhook", VERIFY)
            tsid = notifier.new_call()
            party = notifier.party_id(tsid)
            sim.add_session(tsid, party, status="Answered")
            assert await notifier.status(tsid, "Proceeding") == 200
            assert await notifier.status(tsid, "Answered") == 200
            await server.ringcentral.join()

            # The gateway answers the call with RingCentral's telephonySessionId as its id.
            report = await SimulatedCaller(
                CallOptions(
                    http_url=base,
                    call_id=tsid,
                    verification_token=VERIFY,
                    transcribe_bot=False,
                    max_call_s=60.0,
                )
            ).run([CallerLine("Can I talk to a manager, please?")])
            await server.manager.wait_idle()

        # The gateway got its transfer frame, and RingCentral was asked to transfer the party.
        assert report.transfer == {"phoneNumber": "+15555550100"}
        transfers = sim.requests_to("POST", f"/telephony/sessions/{tsid}/parties/{party}/transfer")
        assert len(transfers) == 1
        assert transfers[0].json() == {"phoneNumber": "+15555550100"}
        assert transfers[0].bearer

        await server.recorder.flush()
        async with aiohttp.ClientSession(headers=operator_headers()) as http, http.get(
            f"{base}/api/calls/{tsid}"
        ) as resp:
            assert resp.status == 200
            record = await resp.json()
        assert record["ringcentral"] == {"telephony_session_id": tsid, "party_id": party}
        assert record["escalated"] is True
        assert record["end_reason"] == "transferred"
    finally:
        await sim.close()
