"""SIPp call flows against the real server's SIP listener (TCP, plain RTP).

One server per module (offline engines, ``sip_listen`` on a free port, an API token);
each test runs one SIPp UAC scenario at it and checks what an operator of the server
would: SIPp's verdict and SIP trace, the call record (``GET /api/calls/{call_id}``, keyed
by the SIP Call-ID that SIPp used), the session counters (`CallSessionManager.stats`),
and the server's own log. Every test waits for the server to be idle again and checks
that no call or dialog outlived it, so the tests stay independent of each other.

The shipped scenarios (`realtime_voice.testing.sipp.SCENARIO_DIR`) run unchanged, except
the CANCEL: our server sends no 180 and answers within a millisecond of its 100, so
``uac_cancel.xml`` (CANCEL on the 180) cannot run against it, and a CANCEL sent on the
100 loses the race to the 200 in half the calls or more. ``tests/e2e/sipp/
uac_cancel_burst.xml`` sends INVITE and CANCEL in one TCP write instead (see its header).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from realtime_voice.server.app import VoiceServer
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.testing.sipp import (
    SCENARIO_DIR,
    SHIPPED_MEDIA_DIR,
    SippResult,
    run_sipp,
    sipp_available,
    write_ulaw_wav,
)
from tests.e2e.conftest import e2e_settings
from tests.unit.test_sip_torture import TORTURE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sipp_available(),
                       reason="sipp not installed (apt-get install sip-tester)"),
    pytest.mark.asyncio(loop_scope="module"),
]

TOKEN = "s" * 32
SERVICE = "bot"
LOCAL_SCENARIOS = Path(__file__).with_name("sipp")
_SIPP_TIMEOUT_S = 15


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(engines: SpeechEngines) -> AsyncIterator[VoiceServer]:
    """The conftest's ``make_server``, once for the module (it is function-scoped)."""
    srv = VoiceServer(e2e_settings(sip_listen=("127.0.0.1", 0), api_token=TOKEN),
                      engines=engines)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(drain_timeout_s=2.0)


@pytest_asyncio.fixture(loop_scope="module")
async def sip(server: VoiceServer) -> AsyncIterator[VoiceServer]:
    """The shared server; after the test, no session or unanswered call is left (an ended
    dialog stays in ``ua.calls`` for 64*T1, for a retransmitted BYE: by design)."""
    yield server
    await asyncio.wait_for(server.manager.wait_idle(), 15)
    await _until(lambda: not server.sip.sessions and not server.sip.ua._pending, 5)
    assert server.manager.stats()["active_calls"] == 0


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The server's own warnings and errors (realtime_voice.*) during the test."""
    caplog.set_level(logging.WARNING, logger="realtime_voice")
    return caplog


def problems(log: pytest.LogCaptureFixture, *expected: str) -> list[str]:
    """realtime_voice lines at WARNING or above, bar those matching an ``expected`` regex."""
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in log.records
            if r.name.startswith("realtime_voice") and r.levelno >= logging.WARNING
            and not any(re.search(pattern, r.getMessage()) for pattern in expected)]


async def _until(condition: Any, timeout_s: float) -> None:
    """Poll the server's live state (it has no event for these) until ``condition()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def sipp(server: VoiceServer, scenario: Path, workdir: Path, **kwargs: Any) -> SippResult:
    """Run one UAC scenario at the server's SIP listener over TCP."""
    address = server.sip.listen_address
    assert address is not None
    return await run_sipp(scenario, f"{address[0]}:{address[1]}", service=SERVICE,
                          timeout_s=_SIPP_TIMEOUT_S, workdir=workdir, **kwargs)


def call_id_of(result: SippResult) -> str:
    """The Call-ID of SIPp's (first) call, from its message trace."""
    match = re.search(r"^Call-ID: *(\S+)", result.messages_log.read_text(), re.MULTILINE)
    assert match is not None, result.describe()
    return match.group(1)


def responses(result: SippResult) -> list[tuple[int, str, str]]:
    """(status, CSeq method, whole message) of every response SIPp received, in order."""
    found = []
    for block in result.messages_log.read_text().split("TCP message received")[1:]:
        message = block.split("\n\n", 1)[1] if "\n\n" in block else block
        status = re.search(r"^SIP/2\.0 (\d{3})", message, re.MULTILINE)
        cseq = re.search(r"^CSeq: *\d+ +(\w+)", message, re.MULTILINE)
        if status and cseq:
            found.append((int(status.group(1)), cseq.group(1), message))
    return found


def to_tag(message: str) -> str | None:
    match = re.search(r"^To:.*;tag=([^;>\s]+)", message, re.MULTILINE)
    return match.group(1) if match else None


async def api(server: VoiceServer, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{server.http_port}{path}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def record_of(server: VoiceServer, call_id: str) -> dict[str, Any]:
    """The call's record, once its session has ended and the recorder has written it."""
    await asyncio.wait_for(server.manager.wait_idle(), 15)
    await server.recorder.flush()
    status, record = await api(server, f"/api/calls/{call_id}")
    assert status == 200, (status, record)
    assert isinstance(record, dict)
    return record


def tone_files(tmp_path: Path, digit: str = "1") -> dict[str, Path]:
    """uac_pcmu's media: a second of 1 kHz tone (µ-law) and the shipped DTMF pcap."""
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    return {
        "caller.ulaw.wav": write_ulaw_wav(tmp_path / "tone.ulaw.wav", tone),
        "dtmf.pcap": SHIPPED_MEDIA_DIR / f"dtmf_2833_{digit}.pcap",
    }


async def pcmu_call(server: VoiceServer, tmp_path: Path) -> tuple[SippResult, dict[str, Any]]:
    result = await sipp(server, SCENARIO_DIR / "uac_pcmu.xml", tmp_path / "pcmu",
                        duration_ms=1000, files=tone_files(tmp_path))
    assert result.returncode == 0 and result.ok, result.describe()
    return result, await record_of(server, call_id_of(result))


# --- the scenarios ------------------------------------------------------------------------


async def test_pcmu_call_with_a_digit_ends_with_the_callers_bye(
    sip: VoiceServer, tmp_path: Path, server_log: pytest.LogCaptureFixture,
) -> None:
    before = sip.manager.stats()["total_calls"]
    result, record = await pcmu_call(sip, tmp_path)
    assert sip.manager.stats()["total_calls"] == before + 1  # type: ignore[operator]
    assert record["protocol"] == "sip" and record["direction"] == "inbound"
    assert record["from_number"] == "sipp" and record["to_number"] == SERVICE
    assert record["end_reason"] == "caller_hangup", record
    digits = [e["data"]["digit"] for e in record["events"] if e["kind"] == "dtmf"]
    assert digits == ["1"], record["events"]
    answers = [r for r in responses(result) if r[1] == "INVITE" and r[0] == 200]
    assert answers and "RTP/AVP 0 101" in answers[0][2]  # PCMU and the DTMF type kept
    assert [r[:2] for r in responses(result)][-1] == (200, "BYE")
    assert problems(server_log) == []


async def test_cancel_before_the_answer_gets_200_and_487_and_no_session(
    sip: VoiceServer, tmp_path: Path, server_log: pytest.LogCaptureFixture,
) -> None:
    before = sip.manager.stats()
    result = await sipp(sip, LOCAL_SCENARIOS / "uac_cancel_burst.xml", tmp_path)
    assert result.returncode == 0 and result.ok, result.describe()
    got = [r[:2] for r in responses(result)]
    assert (200, "CANCEL") in got and (487, "INVITE") in got, got
    assert (200, "INVITE") not in got, got  # never answered
    call_id = call_id_of(result)
    await _until(lambda: call_id not in sip.sip.ua._pending, 5)
    after = sip.manager.stats()
    assert after["total_calls"] == before["total_calls"], (before, after)
    assert call_id not in sip.sip.ua.calls
    await sip.recorder.flush()
    status, _ = await api(sip, f"/api/calls/{call_id}")
    assert status == 404  # no session ran, so nothing was recorded
    status, health = await api(sip, "/api/voice/realtime/health")
    # (sip.calls may still count an earlier test's ended dialog: kept 64*T1 for a late BYE)
    assert status == 200 and health["status"] == "healthy", health
    assert problems(server_log) == []


async def test_hold_and_resume_reinvites_are_answered_and_the_call_goes_on(
    sip: VoiceServer, tmp_path: Path, server_log: pytest.LogCaptureFixture,
) -> None:
    result = await sipp(sip, SCENARIO_DIR / "uac_hold.xml", tmp_path, duration_ms=300)
    # The scenario itself checks a=recvonly|inactive for the hold, a=sendrecv for resume.
    assert result.returncode == 0 and result.ok, result.describe()
    answers = {r[2].split("CSeq:", 1)[1].split()[0]: r[2] for r in responses(result)
               if r[0] == 200 and r[1] == "INVITE"}
    assert "a=sendrecv" in answers["1"]
    assert "a=recvonly" in answers["2"]
    assert "a=sendrecv" in answers["3"] and "a=recvonly" not in answers["3"]
    assert [r[:2] for r in responses(result)][-1] == (200, "BYE")
    record = await record_of(sip, call_id_of(result))
    # Still up after the resume: it ended by the caller's BYE, not by the server.
    assert record["end_reason"] == "caller_hangup", record
    assert problems(server_log) == []


async def test_bye_right_after_the_ack_ends_the_session_cleanly(
    sip: VoiceServer, tmp_path: Path, server_log: pytest.LogCaptureFixture,
) -> None:
    result = await sipp(sip, SCENARIO_DIR / "uac_bye_race.xml", tmp_path)
    assert result.returncode == 0 and result.ok, result.describe()
    assert [r[:2] for r in responses(result)][-1] == (200, "BYE")
    record = await record_of(sip, call_id_of(result))
    assert record["end_reason"] == "caller_hangup", record
    assert problems(server_log) == []


async def test_a_retransmitted_invite_is_one_dialog_and_one_session(
    sip: VoiceServer, tmp_path: Path, server_log: pytest.LogCaptureFixture,
) -> None:
    before = sip.manager.stats()["total_calls"]
    result = await sipp(sip, SCENARIO_DIR / "uac_invite_retransmit.xml", tmp_path)
    # The scenario fails the call on a 200 with another To tag (a second dialog).
    assert result.returncode == 0 and result.ok, result.describe()
    call_id = call_id_of(result)
    # The copy is absorbed by the INVITE transaction, which repeats its 200: same dialog.
    tags = {to_tag(r[2]) for r in responses(result) if r[:2] == (200, "INVITE")}
    assert len(tags) == 1, tags
    record = await record_of(sip, call_id)
    assert record["end_reason"] == "caller_hangup", record
    assert sip.manager.stats()["total_calls"] == before + 1  # type: ignore[operator]
    status, listing = await api(sip, "/api/calls?limit=200")
    assert status == 200
    assert [c["call_id"] for c in listing["calls"]].count(call_id) == 1
    assert problems(server_log) == []


# --- malformed SIP on the listener ---------------------------------------------------------


async def _exchange(server: VoiceServer, data: bytes, *, done: Any,
                    timeout_s: float) -> tuple[bytes, bool]:
    """Send ``data`` on a fresh connection and read until ``done(received, closed)``.

    Returns (what came back, whether the server closed the connection). A ``timeout_s``
    that runs out ends the read too: for input the server may silently drop, silence is
    the answer.
    """
    address = server.sip.listen_address
    assert address is not None
    reader, writer = await asyncio.open_connection(*address)
    received, closed = b"", False
    try:
        with contextlib.suppress(ConnectionError):  # it may close before taking it all
            writer.write(data)
            await writer.drain()

        async def read() -> None:
            nonlocal received, closed
            while not done(received, closed):
                try:
                    chunk = await reader.read(65536)
                except ConnectionError:
                    chunk = b""
                if not chunk:
                    closed = True
                    return
                received += chunk

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), timeout_s)
        return received, closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def _status(reply: bytes) -> int | None:
    match = re.match(rb"SIP/2\.0 (\d{3}) ", reply)
    return int(match.group(1)) if match else None


OPTIONS = (
    b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-after-torture\r\n"
    b"From: <sip:probe@127.0.0.1>;tag=p1\r\n"
    b"To: <sip:bot@127.0.0.1>\r\n"
    b"Call-ID: after-torture@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _answered_options(received: bytes, closed: bool) -> bool:
    return closed or b"\r\nCSeq: 1 OPTIONS\r\n" in received


def _when_closed(received: bytes, closed: bool) -> bool:
    return closed


@pytest.mark.parametrize("name", ["badinv01", "insuf", "ncl"])
async def test_a_torture_message_gets_400_and_the_server_stays_up(
    sip: VoiceServer, name: str, server_log: pytest.LogCaptureFixture,
) -> None:
    """RFC 4475 §3.1.2.1 (';;' in Via), §3.3.1 (no From/To/Call-ID), §3.1.2.3 (negative
    Content-Length: the framing is lost, so the connection closes after the 400)."""
    before = sip.manager.stats()["total_calls"]
    fatal = name == "ncl"
    if fatal:
        reply, closed = await _exchange(sip, TORTURE[name], done=_when_closed, timeout_s=10)
        assert closed, "a stream whose framing is lost must be closed"
    else:  # an OPTIONS behind it on the same connection: a framed bad message is survivable
        reply, closed = await _exchange(sip, TORTURE[name] + OPTIONS,
                                        done=_answered_options, timeout_s=10)
        assert not closed and reply.count(b"SIP/2.0 200 OK") == 1, reply
        assert b"\r\nCSeq: 1 OPTIONS\r\n" in reply.split(b"SIP/2.0 200 OK", 1)[1], reply
    assert _status(reply) == 400, reply[:300]
    # The listener still answers on a new connection.
    again, _ = await _exchange(sip, OPTIONS, done=_answered_options, timeout_s=10)
    assert _status(again) == 200, again
    assert sip.manager.stats()["total_calls"] == before
    lines = problems(server_log)
    assert len(lines) == 1, lines
    assert re.search(r"(bad|unframeable) message.*answered 400", lines[0]), lines


async def test_garbage_bytes_are_dropped_and_a_call_still_works(
    sip: VoiceServer, tmp_path: Path, server_log: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(4475)
    garbage = [
        bytes(rng.integers(0, 256, 4096, dtype=np.uint8)),  # binary noise
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # the wrong protocol
        b"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    ]
    for data in garbage:
        # Dropped: no reply, and maybe a close (the framing is lost); a second of silence
        # is as good an answer as a close.
        reply, _ = await _exchange(sip, data, done=_when_closed, timeout_s=1.0)
        assert reply == b"" or _status(reply) in (400, 413, 505, 513), reply[:300]
    await pcmu_call(sip, tmp_path)  # the listener still takes a whole call
    assert problems(server_log, r"(bad|unframeable) message") == []
