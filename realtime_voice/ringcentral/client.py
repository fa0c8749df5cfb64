"""`RingCentralClient`: authenticated REST calls to the RingCentral platform.

One long-lived client per process: it owns (or borrows) one `aiohttp.ClientSession`
and one `RingCentralAuth`. Each request carries ``Authorization: Bearer <token>``; a 401
drops the cached token and the request is sent once more with a fresh one (a token can be
revoked before it expires); 429, 5xx and connection failures are retried with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp

from realtime_voice.config import Settings
from realtime_voice.ringcentral.auth import RingCentralAuth, RingCentralCredentials
from realtime_voice.ringcentral.transport import (
    DEFAULT_TIMEOUT,
    RawResponse,
    RetryPolicy,
    api_error,
    exchange,
    with_retries,
)

__all__ = ["RingCentralClient"]


class RingCentralClient:
    """Authenticated JSON requests to ``RC_SERVER_URL``.

    Args:
        credentials: who we are.
        http: a client session to use (not closed by `aclose`); one is created (and
            closed) by the client when omitted.
        deadlines: per-request timeouts.
        retry: the retry policy for transient failures.
        refresh_margin_s: how long before expiry the token is renewed.
        clock: monotonic seconds (token expiry; injectable for tests).
    """

    def __init__(
        self,
        credentials: RingCentralCredentials,
        *,
        http: aiohttp.ClientSession | None = None,
        deadlines: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        refresh_margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self._own_http = http is None
        self._http = http if http is not None else aiohttp.ClientSession()
        self._deadlines = deadlines
        self._retry = retry or RetryPolicy()
        # The token fetch runs inside each request's retry loop; retrying it there too
        # would multiply the attempts (3 x 3), so it gets a single try of its own.
        self.auth = RingCentralAuth(
            credentials,
            self._http,
            refresh_margin_s=refresh_margin_s,
            deadlines=deadlines,
            retry=RetryPolicy(attempts=1),
            clock=clock,
        )
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http: aiohttp.ClientSession | None = None
    ) -> RingCentralClient:
        """A client for ``RC_SERVER_URL`` with ``RC_CLIENT_ID``/``SECRET``/``JWT_TOKEN``.

        Raises:
            RingCentralConfigError: a credential is not set.
        """
        return cls(RingCentralCredentials.from_settings(settings), http=http)

    async def request(self, method: str, path: str, *, json_body: Any = None) -> Any:
        """Send an authenticated request; the parsed JSON answer (None for an empty one).

        Args:
            method: HTTP method.
            path: path under ``RC_SERVER_URL`` (``/restapi/v1.0/...``).
            json_body: a JSON body, if any.

        Raises:
            RingCentralApiError: an error status (after retries for 429/5xx).
            RingCentralAuthError: the token endpoint refused our credentials.
            RingCentralConnectionError: no answer (after retries).
            RuntimeError: the client is closed.
        """
        if self._closed:
            raise RuntimeError("RingCentralClient is closed")

        async def once() -> Any:
            token = await self.auth.access_token()
            resp = await self._send(method, path, token, json_body)
            if resp.status == 401:
                self.auth.invalidate(token)
                resp = await self._send(method, path, await self.auth.access_token(), json_body)
            if resp.status >= 400:
                raise api_error(resp, method, path)
            return resp.json()

        return await with_retries(self._retry, once)

    async def _send(self, method: str, path: str, token: str, json_body: Any) -> RawResponse:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return await exchange(
            self._http,
            method,
            self.credentials.server_url + path,
            deadlines=self._deadlines,
            headers=headers,
            json_body=json_body,
        )

    async def aclose(self) -> None:
        """Close the client (and its session, if it created it). Idempotent."""
        self._closed = True
        if self._own_http and not self._http.closed:
            await self._http.close()

    async def __aenter__(self) -> RingCentralClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
