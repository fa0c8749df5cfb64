"""Building Deepgram SDK clients that point at Deepgram, or at a stand-in such as the simulator.

The SDK takes its hosts from a `DeepgramClientEnvironment`: ``base`` for REST (Aura
``/v1/speak``) and ``production`` for every WebSocket (``/v1/listen``). Settings give
them as ``DEEPGRAM_BASE_URL`` and ``DEEPGRAM_WS_URL``; unset means Deepgram's own hosts.

WebSocket options (timeouts, compression) are only reachable through the SDK's
``transport_factory``, which patches the SDK process-wide and accepts one factory per
process. This module installs exactly one, `connect_websocket`, the same object every
time, so building any number of clients is safe. Besides the options, the factory
records the raw connection of the calling thread (`last_connection`) so the STT bridge
can abort a socket whose peer stopped reading, from another thread.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from dataclasses import dataclass
from typing import Final

import httpx
from deepgram import AsyncDeepgramClient, DeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as _ws_connect

# The SDK's socket modules import websockets' deprecated legacy names (the async socket
# client is built on them); we use the sync client only. Importing them here, once,
# with exactly those two warnings silenced keeps them out of every caller's logs (and
# out of test runs that treat warnings as errors); later imports hit the module cache.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        r"websockets\.(exceptions\.InvalidStatusCode|legacy) is deprecated",
        DeprecationWarning,
    )
    for _module in (
        "deepgram.core.websocket_compat",
        "deepgram.listen.v1.socket_client",
        "deepgram.listen.v1.raw_client",
        "deepgram.listen.v1.client",
    ):
        importlib.import_module(_module)

__all__ = [
    "DEFAULT_REST_URL",
    "DEFAULT_WS_URL",
    "WS_CLOSE_TIMEOUT_S",
    "WS_OPEN_TIMEOUT_S",
    "AsyncClientHandle",
    "connect_websocket",
    "create_async_client",
    "create_client",
    "environment",
    "last_connection",
]

DEFAULT_REST_URL: Final = "https://api.deepgram.com"
"""Deepgram's REST host (the SDK's production environment)."""

DEFAULT_WS_URL: Final = "wss://api.deepgram.com"
"""Deepgram's WebSocket host."""

WS_OPEN_TIMEOUT_S: Final = 5.0
"""TCP + TLS + upgrade must finish within this (websockets' default of 10 s would hold a
reconnect twice as long against a host that accepts TCP and then says nothing)."""

WS_CLOSE_TIMEOUT_S: Final = 2.0
"""Wait for the peer's close frame at most this long (default 10 s), so stopping a
stream against a stalled server stays short."""

_local = threading.local()


def connect_websocket(url: str, headers: dict[str, str]) -> ClientConnection:
    """The SDK's sync WebSocket transport: websockets' client with our options.

    Compression is off: permessage-deflate gains nothing on PCM or mu-law audio and
    would cost zlib time on every 20 ms frame of every call. Ping keepalive stays at
    websockets' defaults (Deepgram answers pings; they do not count as KeepAlive).

    Args:
        url: the full ``ws(s)://…/v1/listen?…`` URL built by the SDK.
        headers: the SDK's headers (Authorization, session id, user agent).

    Returns:
        An open connection; also remembered for this thread (`last_connection`).

    Raises:
        websockets.exceptions.InvalidStatus: the server refused the upgrade.
        OSError: connection failures (refused, unreachable, DNS).
        TimeoutError: the handshake took longer than `WS_OPEN_TIMEOUT_S`.
    """
    _local.connection = None
    connection = _ws_connect(
        url,
        additional_headers=headers,
        compression=None,
        open_timeout=WS_OPEN_TIMEOUT_S,
        close_timeout=WS_CLOSE_TIMEOUT_S,
        # The SDK's shim closes what the factory returns: we want the connection itself,
        # not websockets' newer connect-as-context-manager object.
        legacy=True,
    )
    _local.connection = connection
    return connection


def last_connection() -> ClientConnection | None:
    """The connection `connect_websocket` last opened in the calling thread, if any."""
    connection: ClientConnection | None = getattr(_local, "connection", None)
    return connection


def environment(
    base_url: str | None = None, ws_url: str | None = None
) -> DeepgramClientEnvironment:
    """The SDK environment for a REST URL and a WebSocket URL (Deepgram's when ``None``).

    Args:
        base_url: ``http(s)://host[:port]`` for REST (``DEEPGRAM_BASE_URL``).
        ws_url: ``ws(s)://host[:port]`` for WebSockets (``DEEPGRAM_WS_URL``).
    """
    rest = (base_url or DEFAULT_REST_URL).rstrip("/")
    ws = (ws_url or DEFAULT_WS_URL).rstrip("/")
    # The voice-agent hosts are unused here; pointing them at the same place keeps a
    # stand-in server from ever leaking requests to Deepgram.
    agent_ws = ws if ws_url else "wss://agent.deepgram.com"
    agent_rest = rest if base_url else "https://agent.deepgram.com"
    return DeepgramClientEnvironment(
        base=rest, production=ws, agent=agent_ws, agent_rest=agent_rest
    )


def create_client(
    api_key: str,
    *,
    base_url: str | None = None,
    ws_url: str | None = None,
    timeout_s: float = 10.0,
) -> DeepgramClient:
    """A sync client (streaming STT) with our WebSocket transport installed.

    One client per process is enough: it holds no per-stream state, and its HTTP pool
    is thread-safe.

    Args:
        api_key: sent as ``Authorization: Token <key>``.
        base_url: REST host, default Deepgram's.
        ws_url: WebSocket host, default Deepgram's.
        timeout_s: REST read timeout.

    Raises:
        ValueError: ``api_key`` is empty.
    """
    if not api_key:
        raise ValueError("a Deepgram API key is required")
    return DeepgramClient(
        api_key=api_key,
        environment=environment(base_url, ws_url),
        timeout=timeout_s,
        transport_factory=connect_websocket,
    )


@dataclass(frozen=True, slots=True)
class AsyncClientHandle:
    """An asyncio SDK client together with the HTTP pool it runs on (which we close).

    Attributes:
        client: the SDK client to hand to `DeepgramTextToSpeech`.
        http: its connection pool; bound to the event loop that first uses it.
    """

    client: AsyncDeepgramClient
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        """Close the pooled connections (at shutdown)."""
        await self.http.aclose()


def create_async_client(
    api_key: str,
    *,
    base_url: str | None = None,
    ws_url: str | None = None,
    connect_timeout_s: float = 3.0,
    read_timeout_s: float = 10.0,
) -> AsyncClientHandle:
    """An asyncio client for Aura REST, on an HTTP pool owned by the returned handle.

    Create it once per process (per event loop) and ``await handle.aclose()`` at shutdown.

    Args:
        api_key: sent as ``Authorization: Token <key>``.
        base_url: REST host, default Deepgram's.
        ws_url: WebSocket host, default Deepgram's (unused by REST calls).
        connect_timeout_s: TCP/TLS connect timeout of each request.
        read_timeout_s: longest wait for the next bytes of a response (per read).

    Raises:
        ValueError: ``api_key`` is empty.
    """
    if not api_key:
        raise ValueError("a Deepgram API key is required")
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        follow_redirects=True,
    )
    client = AsyncDeepgramClient(
        api_key=api_key, environment=environment(base_url, ws_url), httpx_client=http
    )
    return AsyncClientHandle(client, http)
