"""One real server per test module for the console's tests, and the browser to drive it.

The server is the production `VoiceServer` on free loopback ports with the offline
engines, a temporary data directory, a known operator token and recordings on. The
browser is Debian's Chromium (``apt-get install chromium``) driven by Playwright's own
driver; ``playwright install`` (a download) is never run. Without /usr/bin/chromium the
browser tests are skipped; the API tests need no browser. What the tests add to the
pages (a speaker tap, a voice mixed into the microphone) is
`realtime_voice.testing.browser_page`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from realtime_voice.config import Settings, load_settings
from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.session.engines import SpeechEngines

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

TOKEN = "console-test-token-0123456789abcdef"
"""The operator token of every test server here."""

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
"""Where the browser tests write a screenshot of each page (gitignored)."""


def console_settings(data_dir: str) -> Settings:
    """Settings for a console test server: loopback, free ports, recordings on."""
    base = load_settings({}, dotenv=None)
    return dataclasses.replace(
        base,
        database_url=f"sqlite:///{data_dir}/calls.db",
        spool_dir=f"{data_dir}/spool",
        http_host="127.0.0.1",
        http_port=0,
        media_host="127.0.0.1",
        media_port=0,
        public_media_url="",
        drain_timeout_s=2.0,
        mark_timeout_s=5.0,
        api_token=TOKEN,
        console=dataclasses.replace(base.console, data_dir=data_dir, recordings=True),
    )


@pytest.fixture(scope="session")
def console_engines() -> SpeechEngines:
    """The offline engines, loaded once per test process."""
    return build_engines(load_settings({}, dotenv=None))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_server(console_engines: SpeechEngines) -> AsyncIterator[VoiceServer]:
    """One running server for the whole module."""
    with tempfile.TemporaryDirectory(prefix="rv-console-") as data_dir:
        server = VoiceServer(console_settings(data_dir), engines=console_engines)
        await server.start()
        try:
            yield server
        finally:
            await server.stop(drain_timeout_s=2.0)


def base_url(server: VoiceServer) -> str:
    """The server's HTTP plane."""
    return f"http://127.0.0.1:{server.http_port}"


def bearer() -> dict[str, str]:
    """The operator's API credentials."""
    return {"Authorization": f"Bearer {TOKEN}"}
