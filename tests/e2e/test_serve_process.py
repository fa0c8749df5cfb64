"""``realtime-voice serve`` as a real process: start-up checks, health, graceful shutdown.

Each test starts the server the way an operator does (console script, environment, a
working directory that may hold a ``.env``), talks to it over real sockets, signals it and
checks the exit status (README "Configuration" and "Shutdown", docs/PROTOCOLS.md §1, §2, §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import stat
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from websockets.asyncio.client import connect

from tests.e2e.process_helpers import (
    BridgeGateway,
    ServeProcess,
    free_ports,
    get_json,
    post_inbound,
    serve_command,
    serve_env,
)

pytestmark = pytest.mark.e2e

# Generous bounds on waits (a loaded machine still finishes far inside them): exceeding one
# means the thing waited for did not happen, not that it was slow.
START_DEADLINE_S = 90.0
CALL_DEADLINE_S = 60.0
SHORT_DRAIN_S = 2.0
# A drain timeout no test should wait out: the server must exit well inside it (by
# EXIT_BOUND_S after the signal) when no call is live, which proves it did not wait.
LONG_DRAIN_S = 30.0
EXIT_BOUND_S = LONG_DRAIN_S / 2

Launch = Callable[..., ServeProcess]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start ``realtime-voice serve`` children on free loopback ports; kill them afterwards."""
    children: list[ServeProcess] = []

    def start(**settings: str) -> ServeProcess:
        http_port, media_port = free_ports(2)
        workdir = tmp_path / f"serve-{len(children)}"
        workdir.mkdir()
        child = ServeProcess(workdir, serve_env(http_port, media_port, **settings))
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.kill()


def is_mark(name: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the ``mark`` frame called ``name``."""
    return lambda frame: frame.get("type") == "mark" and frame.get("name") == name


def is_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    """Matches any control frame of type ``kind``."""
    return lambda frame: frame.get("type") == kind


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "dotenv", "must_mention"),
    [
        pytest.param(
            {"VOICE_MEDIA_PORT": "abc"},
            None,
            ("VOICE_MEDIA_PORT", "TCP port"),
            id="media-port-not-a-number",
        ),
        pytest.param(
            {"VOICE_SILENCE_THRESHOLD": "7"},
            None,
            ("VOICE_SILENCE_THRESHOLD", "between 0 and 1"),
            id="silence-threshold-out-of-range",
        ),
        pytest.param(
            {},
            "VOICE_BUSINESS_NAME=Chez Test\nthis line is not a setting\n",
            (".env:2", "KEY=VALUE"),
            id="malformed-dotenv-line",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(
    tmp_path: Path, settings: dict[str, str], dotenv: str | None, must_mention: tuple[str, ...]
) -> None:
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    http_port, media_port = free_ports(2)
    env = serve_env(http_port, media_port, **settings)
    # The bound only matters if start-up wrongly went ahead: run() then kills the server.
    result = subprocess.run(
        serve_command(), cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=START_DEADLINE_S, check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in must_mention:
        assert fragment in lines[0]
    assert result.stdout == ""


# ---------------------------------------------------------------------- no calls


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serves_both_planes_and_stops_on_a_signal(
    launch: Launch, sig: signal.Signals
) -> None:
    server = launch(VOICE_DRAIN_TIMEOUT=str(LONG_DRAIN_S))
    await server.wait_ready(START_DEADLINE_S)

    for port in (server.http_port, server.media_port):
        status, health = await get_json(server.health_url(port))
        assert status == 200
        assert health["status"] == "healthy"
        assert health["deepgram"] == "offline"
        assert health["active_calls"] == 0

    # Safe by default: with no VOICE_API_TOKEN the first start generated one, keeps it in
    # a private file of the data directory, and printed the one-click login link once.
    printed = await server.wait_stdout(lambda out: "/login?token=" in out, deadline_s=10)
    token_file = server.workdir / "var" / "api-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"http://127.0.0.1:{server.http_port}/login?token={token}" in printed
    assert printed.count(token) == 1 and str(token_file) in printed
    assert token not in server.stderr
    calls = f"http://127.0.0.1:{server.http_port}/api/calls"
    async with aiohttp.ClientSession() as http:
        async with http.get(calls) as resp:
            assert resp.status == 401
        async with http.get(calls, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200

    status, answer = await post_inbound(server.http_port, "call-serve-1")
    assert status == 200, answer
    assert answer["action"] == "answer"
    media = answer["media"]
    assert media["type"] == "websocket"
    assert media["format"] == {"encoding": "mulaw", "sampleRate": 8000, "channels": 1}
    url = urlsplit(media["url"])
    assert f"{url.scheme}://{url.netloc}" == f"ws://127.0.0.1:{server.media_port}"
    assert url.path == "/api/voice/realtime/ws/call"
    query = parse_qs(url.query)
    assert query["call_id"] == ["call-serve-1"]
    assert query["token"][0]

    # An answered call whose media never connected is not a live call: nothing to drain.
    server.send_signal(sig)
    assert await server.wait_exit(timeout_s=EXIT_BOUND_S) == 0
    assert "Traceback" not in server.stderr


# ---------------------------------------------------------------------- live calls


@contextlib.asynccontextmanager
async def greeted_call(server: ServeProcess, call_id: str) -> AsyncIterator[BridgeGateway]:
    """A bridge call to ``server``, answered and greeted; the gateway is closed after."""
    status, answer = await post_inbound(server.http_port, call_id)
    assert status == 200, answer
    async with connect(answer["media"]["url"], proxy=None) as ws:
        gateway = BridgeGateway(ws)
        gateway.start()
        try:
            await gateway.send_json({"type": "start"})
            async with asyncio.timeout(CALL_DEADLINE_S):
                await gateway.wait_frame(is_mark("greeting_done"))
            yield gateway
        finally:
            await gateway.aclose()


async def test_sigterm_drains_then_says_goodbye_and_hangs_up(launch: Launch) -> None:
    server = launch(VOICE_DRAIN_TIMEOUT=str(SHORT_DRAIN_S))
    await server.wait_ready(START_DEADLINE_S)
    async with greeted_call(server, "call-drain-1") as gateway:
        server.send_signal(signal.SIGTERM)
        # Draining: the load balancer and the gateway are told to go elsewhere, while
        # the live call carries on.
        status, health = await server.wait_health(
            lambda code, _: code == 503, deadline_s=CALL_DEADLINE_S
        )
        assert health["status"] == "unhealthy"
        assert health["active_calls"] == 1
        status, media_health = await get_json(server.health_url(server.media_port))
        assert status == 503
        assert media_health["status"] == "unhealthy"
        status, refusal = await post_inbound(server.http_port, "call-drain-2")
        assert status == 503
        assert refusal["action"] == "reject"
        assert isinstance(refusal.get("reason"), str) and refusal["reason"]
        assert not gateway.closed
        assert not any(is_type("hangup")(f) for f in gateway.control_frames())

        async with asyncio.timeout(CALL_DEADLINE_S):
            code = await gateway.wait_closed()

    after_greeting = gateway.frames_after(is_mark("greeting_done"))
    hangups = [
        i for i, f in enumerate(after_greeting) if isinstance(f, dict) and is_type("hangup")(f)
    ]
    assert len(hangups) == 1, gateway.control_frames()
    goodbye = [f for f in after_greeting[: hangups[0]] if isinstance(f, bytes)]
    # A spoken goodbye line: a second or more of 20 ms mu-law frames before the hang-up.
    assert len(goodbye) >= 50
    assert all(len(frame) == 160 for frame in goodbye)
    hangup = after_greeting[hangups[0]]
    assert isinstance(hangup, dict) and isinstance(hangup.get("reason"), str)
    assert after_greeting[hangups[0] + 1 :] == []
    assert code == 1000
    assert await server.wait_exit(timeout_s=CALL_DEADLINE_S) == 0
    assert "Traceback" not in server.stderr


async def test_a_call_ending_during_the_drain_lets_the_server_exit_at_once(
    launch: Launch,
) -> None:
    server = launch(VOICE_DRAIN_TIMEOUT=str(LONG_DRAIN_S))
    await server.wait_ready(START_DEADLINE_S)
    async with greeted_call(server, "call-drain-3") as gateway:
        server.send_signal(signal.SIGTERM)
        # Only once the server is draining does the caller hang up, so the call ends
        # inside the drain window rather than before it.
        await server.wait_health(lambda code, _: code == 503, deadline_s=CALL_DEADLINE_S)
        await gateway.stop_audio()
        await gateway.send_json({"type": "stop"})
        async with asyncio.timeout(CALL_DEADLINE_S):
            code = await gateway.wait_closed()

    assert code == 1000
    # The caller left on their own: no goodbye was forced on them.
    after_greeting = gateway.frames_after(is_mark("greeting_done"))
    assert not any(isinstance(f, bytes) for f in after_greeting)
    assert not any(is_type("hangup")(f) for f in gateway.control_frames())
    # Bounded well inside the drain timeout: a server that waited it out fails here.
    assert await server.wait_exit(timeout_s=EXIT_BOUND_S) == 0
    assert "Traceback" not in server.stderr
