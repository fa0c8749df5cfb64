"""Outbound calls through the SIP leg: POST /api/calls/outbound against the fake edge's
scripted callees (407 digest, early media, answer / busy / no answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from realtime_voice.cli import main as cli_main
from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.ringcentral_sim import RingCentralSimulator
from realtime_voice.testing.sip_edge import Callee, FakeRingCentralEdge
from realtime_voice.testing.tls_certs import LoopbackCertificates

pytestmark = pytest.mark.e2e

USER, AUTH_ID, PASSWORD, TOKEN = "16505550100", "802398765", "s3cret", "t" * 32


async def _server(make_server: Callable[..., object], edge: FakeRingCentralEdge,
                  ca_file: Path, **extra: object) -> VoiceServer:
    server = await make_server(  # type: ignore[misc]
        rc_sip_domain="sip.ringcentral.com", rc_sip_outbound_proxy=("127.0.0.1", edge.port),
        rc_sip_username=USER, rc_sip_password=PASSWORD, rc_sip_authorization_id=AUTH_ID,
        rc_sip_ca_file=str(ca_file), **extra)
    assert isinstance(server, VoiceServer)
    await edge.wait_registered(USER, timeout_s=10)
    await server.sip.ua.wait_registered(10)
    return server


async def test_outbound_calls_say_how_they_ended(
    make_server: Callable[..., object], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    certs = LoopbackCertificates()
    ca_file = certs.write_ca(tmp_path / "ca.pem")
    async with FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD},
                                   ssl_context=certs.server_context()) as edge:
        answer = Callee("answer", credentials={AUTH_ID: PASSWORD})
        edge.callees["+15551230000"] = answer
        edge.callees["+15551230001"] = Callee("busy", credentials={AUTH_ID: PASSWORD})
        edge.callees["+15551230002"] = Callee("no_answer", credentials={AUTH_ID: PASSWORD})
        server = await _server(make_server, edge, ca_file, api_token=TOKEN)
        url = f"http://127.0.0.1:{server.http_port}/api/calls/outbound"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"to": "+15551230000"}) as resp:
                assert resp.status == 401
            async with http.post(url, json={"to": "not a number"}, headers=auth) as resp:
                assert resp.status == 400
                assert (await resp.json())["field"] == "to"
            body = {"to": "+15551230000", "flow": "real_estate",
                    "parameters": {"customer_name": "Dana"}, "ring_timeout_s": 5}
            async with http.post(url, json=body, headers=auth) as resp:
                assert resp.status == 200
                answered = await resp.json()
            assert answered["outcome"] == "answered" and answered["status"] == 200
            await answer.acked.wait()
            for number, outcome in (("+15551230001", "busy"), ("+15551230002", "no_answer")):
                async with http.post(url, json={"to": number, "ring_timeout_s": 0.5},
                                     headers=auth) as resp:
                    report = await resp.json()
                assert report["outcome"] == outcome, report
            # The command line does the same through the API.
            code = await asyncio.to_thread(cli_main, [
                "dial", "+15551230001", "--ring-timeout", "2", "--token", TOKEN,
                "--url", f"http://127.0.0.1:{server.http_port}"])
            assert code == 1
            assert capsys.readouterr().out.startswith("busy (486 Busy Here), call ")
            # The answered call is a live session of its own; end it from the callee's side
            # by stopping the server (it says goodbye and hangs up: BYE).
            session = server.manager.get(answered["call_id"])
            assert session is not None
            await session.end("test_over")
            await answer.bye.wait()
            await server.manager.wait_idle()
            await server.recorder.flush()
            calls = f"http://127.0.0.1:{server.http_port}/api/calls"
            async with http.get(f"{calls}/{answered['call_id']}", headers=auth) as resp:
                record = await resp.json()
            assert record["direction"] == "outbound"
            assert record["flow"] == "real_estate"
            assert record["custom_parameters"]["customer_name"] == "Dana"
            async with http.get(f"{calls}/{report['call_id']}", headers=auth) as resp:
                unanswered = await resp.json()
            assert unanswered["outcome"] == "no_answer"
            assert unanswered["direction"] == "outbound"


async def test_outbound_without_a_configured_token_takes_the_generated_one(
    make_server: Callable[..., object], tmp_path: Path,
) -> None:
    certs = LoopbackCertificates()
    async with FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD},
                                   ssl_context=certs.server_context()) as edge:
        server = await _server(make_server, edge, certs.write_ca(tmp_path / "ca.pem"),
                               api_token=None)
        assert server.operator_token.source == "generated"
        assert server.operator_token.path is not None
        generated = server.operator_token.path.read_text().strip()
        url = f"http://127.0.0.1:{server.http_port}/api/calls/outbound"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"to": "+15551230000"}) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"] == "unauthorized"
            # The generated token is let through (the bad body shows it got past the check).
            async with http.post(url, json={"to": ""},
                                 headers={"Authorization": f"Bearer {generated}"}) as resp:
                assert resp.status == 400
                assert (await resp.json())["field"] == "to"


async def test_the_device_credentials_can_come_from_ringcentral(
    make_server: Callable[..., object], tmp_path: Path,
) -> None:
    certs = LoopbackCertificates()
    sim = RingCentralSimulator()
    await sim.start()
    try:
        async with FakeRingCentralEdge(credentials={AUTH_ID: PASSWORD},
                                       ssl_context=certs.server_context()) as edge:
            sim.devices.add("800112233", domain="sip.ringcentral.com",
                            proxy_tls=f"127.0.0.1:{edge.port}", username=USER,
                            password=PASSWORD, authorization_id=AUTH_ID)
            jwt_app = {"rc_server_url": sim.url, "rc_client_id": sim.client_id,
                       "rc_client_secret": sim.client_secret, "rc_jwt_token": sim.jwt,
                       "rc_sip_ca_file": str(certs.write_ca(tmp_path / "ca.pem"))}
            server = await make_server(rc_sip_device_id="800112233", **jwt_app)  # type: ignore[misc]
            assert isinstance(server, VoiceServer)
            await edge.wait_registered(USER, timeout_s=10)
            assert sim.requests_to("GET", "/device/800112233/sip-info")[0].status == 200
            # A device RingCentral does not know: the SIP leg stays down, health says why.
            other = await make_server(rc_sip_device_id="404404", **jwt_app)  # type: ignore[misc]
            assert isinstance(other, VoiceServer)
            code, health = other.health.report()
            assert code == 200
            assert health["status"] == "degraded"
            sip = health["sip"]
            assert isinstance(sip, dict) and sip["registration"] == "failing"
            assert "404404" in str(sip["detail"])
    finally:
        await sim.close()
