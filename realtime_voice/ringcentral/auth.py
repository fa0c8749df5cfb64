"""JWT-bearer OAuth against RingCentral: a cached access token, renewed before expiry.

RingCentral's server-to-server flow (RFC 7523): ``POST {RC_SERVER_URL}/restapi/oauth/token``
with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
``assertion=<RC_JWT_TOKEN>``, authenticated with HTTP Basic client id and secret. The JWT
credential itself does not expire, so a token near its end is simply replaced by asking
again with the JWT (no refresh-token bookkeeping to lose).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from realtime_voice.config import Settings
from realtime_voice.ringcentral.errors import (
    RingCentralAuthError,
    RingCentralConfigError,
)
from realtime_voice.ringcentral.transport import (
    DEFAULT_TIMEOUT,
    RetryPolicy,
    api_error,
    exchange,
    with_retries,
)

__all__ = ["JWT_BEARER_GRANT", "TOKEN_PATH", "RingCentralAuth", "RingCentralCredentials"]

log = logging.getLogger(__name__)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/restapi/oauth/token"


@dataclass(frozen=True)
class RingCentralCredentials:
    """What the client needs to obtain tokens.

    Attributes:
        server_url: ``RC_SERVER_URL`` (no trailing slash).
        client_id: ``RC_CLIENT_ID``.
        client_secret: ``RC_CLIENT_SECRET``.
        jwt: ``RC_JWT_TOKEN``, the JWT credential.
    """

    server_url: str
    client_id: str
    client_secret: str = field(repr=False)
    jwt: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RingCentralCredentials:
        """Credentials from the server settings.

        Raises:
            RingCentralConfigError: a variable is unset (the message names every one).
        """
        missing = [
            name
            for name, value in (
                ("RC_CLIENT_ID", settings.rc_client_id),
                ("RC_CLIENT_SECRET", settings.rc_client_secret),
                ("RC_JWT_TOKEN", settings.rc_jwt_token),
            )
            if not value
        ]
        if missing:
            raise RingCentralConfigError(
                f"RingCentral credentials missing: set {', '.join(missing)}"
            )
        assert settings.rc_client_id and settings.rc_client_secret and settings.rc_jwt_token
        return cls(
            server_url=settings.rc_server_url.rstrip("/"),
            client_id=settings.rc_client_id,
            client_secret=settings.rc_client_secret,
            jwt=settings.rc_jwt_token,
        )


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float  # monotonic


class RingCentralAuth:
    """Hands out a valid access token, fetching a new one when the cached one nears expiry.

    Args:
        credentials: client id, secret, JWT and server.
        http: the client session requests go through.
        refresh_margin_s: renew this long before expiry (at most half the token's life).
        deadlines: per-request timeouts.
        retry: how 429/5xx/connection failures of the token endpoint are retried.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        credentials: RingCentralCredentials,
        http: aiohttp.ClientSession,
        *,
        refresh_margin_s: float = 60.0,
        deadlines: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._http = http
        self._margin = refresh_margin_s
        self._deadlines = deadlines
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.token_requests = 0

    async def access_token(self) -> str:
        """A token valid for at least the refresh margin.

        Raises:
            RingCentralAuthError: the credentials or JWT were refused.
            RingCentralApiError: the token endpoint kept failing (5xx/429).
            RingCentralConnectionError: the token endpoint could not be reached.
        """
        token = self._token
        if token is not None and self._clock() < token.renew_at:
            return token.value
        # One fetch at a time: concurrent callers wait and share its result.
        async with self._lock:
            token = self._token
            if token is None or self._clock() >= token.renew_at:
                token = await with_retries(self._retry, self._fetch)
                self._token = token
            return token.value

    def invalidate(self, value: str) -> None:
        """Drop the cached token if it is ``value`` (the API said 401 to it)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self) -> _Token:
        self.token_requests += 1
        creds = self._credentials
        resp = await exchange(
            self._http,
            "POST",
            creds.server_url + TOKEN_PATH,
            deadlines=self._deadlines,
            headers={"Accept": "application/json", "Authorization": _basic(creds)},
            form={"grant_type": JWT_BEARER_GRANT, "assertion": creds.jwt},
        )
        if resp.status == 429 or resp.status >= 500:
            raise api_error(resp, "POST", TOKEN_PATH)
        doc = resp.json()
        if resp.status != 200:
            error = description = ""
            if isinstance(doc, dict):
                error = str(doc.get("error") or doc.get("errorCode") or "")
                description = str(doc.get("error_description") or doc.get("message") or "")
            raise RingCentralAuthError(
                resp.status, error or "unknown_error", description or resp.reason
            )
        if not isinstance(doc, dict):
            raise RingCentralAuthError(200, "malformed_response", "token response is not JSON")
        value = doc.get("access_token")
        expires_in = doc.get("expires_in", 3600)
        if not isinstance(value, str) or not value:
            raise RingCentralAuthError(200, "malformed_response", "no access_token in response")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or (
            expires_in <= 0
        ):
            raise RingCentralAuthError(200, "malformed_response", "expires_in is not positive")
        margin = min(self._margin, expires_in / 2)
        log.info("ringcentral access token obtained (valid %d s)", int(expires_in))
        return _Token(value, self._clock() + expires_in - margin)


def _basic(creds: RingCentralCredentials) -> str:
    """HTTP Basic client authentication (RFC 7617) with the client id and secret."""
    pair = f"{creds.client_id}:{creds.client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")
