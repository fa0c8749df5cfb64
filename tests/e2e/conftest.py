"""A real server on free ports with the offline engines, shared models per test process."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator, Callable

import pytest

from realtime_voice.config import Settings, load_settings
from realtime_voice.config_console import ConsoleSettings
from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.session.engines import SpeechEngines

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

OPERATOR_TOKEN = "e2e-operator-token-0123456789abcdef"
"""Every test server's operator token (``VOICE_API_TOKEN``) unless a test sets its own."""


def operator_headers(token: str = OPERATOR_TOKEN) -> dict[str, str]:
    """The header the calls API and the control routes want from an API client."""
    return {"Authorization": f"Bearer {token}"}


def e2e_settings(**overrides: object) -> Settings:
    """Settings for a test server: loopback, free ports, short timeouts, `OPERATOR_TOKEN`.

    Its data directory is a fresh temporary one: nothing is written into the checkout.
    """
    base = load_settings({}, dotenv=None)
    data_dir = tempfile.mkdtemp(prefix="rv-e2e-")
    defaults: dict[str, object] = {
        "database_url": f"sqlite:///{data_dir}/calls.db",
        "spool_dir": f"{data_dir}/spool",
        "http_host": "127.0.0.1",
        "http_port": 0,
        "media_host": "127.0.0.1",
        "media_port": 0,
        "public_media_url": "",
        "drain_timeout_s": 5.0,
        "mark_timeout_s": 5.0,
        "api_token": OPERATOR_TOKEN,
        "console": ConsoleSettings(data_dir=data_dir),
    }
    defaults.update(overrides)
    return dataclasses.replace(base, **defaults)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def engines() -> SpeechEngines:
    """One set of engines (models load once per test process)."""
    return build_engines(e2e_settings())


ServerFactory = Callable[..., "AsyncIterator[VoiceServer]"]


@pytest.fixture
async def make_server(engines: SpeechEngines) -> AsyncIterator[Callable[..., object]]:
    servers: list[VoiceServer] = []

    async def factory(**overrides: object) -> VoiceServer:
        server = VoiceServer(e2e_settings(**overrides), engines=engines)
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop(drain_timeout_s=2.0)


@pytest.fixture
async def server(make_server: Callable[..., object]) -> VoiceServer:
    srv = await make_server()  # type: ignore[misc]
    assert isinstance(srv, VoiceServer)
    return srv
