"""The simulator's OAuth: the JWT-bearer token endpoint and the bearer check of the API.

``POST /restapi/oauth/token`` takes the JWT-bearer grant: HTTP Basic client credentials
and the assertion must match the configured ones (compared in constant time, as a real
server would). Each access token it issues expires ``token_ttl_s`` after issue, on an
injectable clock, and every API route asks `TokenIssuer.bearer_error` before anything
else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable
from typing import Final, Protocol

from aiohttp import web

from realtime_voice.testing.ringcentral_sim.records import sim_error

__all__ = ["JWT_BEARER_GRANT", "TOKEN_PATH", "Credentials", "TokenIssuer"]

JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH: Final = "/restapi/oauth/token"


class Credentials(Protocol):
    """What the token endpoint accepts and issues (`RingCentralSimulator` has them)."""

    client_id: str
    """The accepted ``RC_CLIENT_ID``."""
    client_secret: str
    """The accepted ``RC_CLIENT_SECRET``."""
    jwt: str
    """The accepted ``RC_JWT_TOKEN`` assertion."""
    token_ttl_s: int
    """``expires_in`` of issued access tokens."""


class TokenIssuer:
    """Issues access tokens and checks them on API requests.

    Args:
        credentials: read at each request, so a test may change them at any time.
        clock: monotonic seconds for token expiry.
    """

    def __init__(self, credentials: Credentials, clock: Callable[[], float]) -> None:
        self._credentials = credentials
        self._clock = clock
        self._tokens: dict[str, float] = {}  # access token -> expiry on the clock

    def revoke_all(self) -> None:
        """Invalidate every issued access token (the API then answers 401)."""
        self._tokens.clear()

    async def token(self, request: web.Request) -> web.Response:
        """``POST /restapi/oauth/token``: the JWT-bearer grant."""
        if not self._basic_auth_ok(request.headers.get("Authorization", "")):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client credentials"},
                status=401,
            )
        form = await request.post()
        grant = form.get("grant_type")
        if grant != JWT_BEARER_GRANT:
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": f"{grant!r}"},
                status=400,
            )
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or not hmac.compare_digest(
            assertion.encode(), self._credentials.jwt.encode()
        ):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT assertion"},
                status=400,
            )
        ttl_s = self._credentials.token_ttl_s
        token = "sim-at-" + secrets.token_urlsafe(18)
        self._tokens[token] = self._clock() + ttl_s
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": ttl_s,
                "refresh_token": "sim-rt-" + secrets.token_urlsafe(18),
                "refresh_token_expires_in": 604800,
                "scope": "CallControl ReadAccounts WebhookSubscriptions",
                "owner_id": "684351005",
                "endpoint_id": "sim-endpoint",
            }
        )

    def bearer_error(self, request: web.Request) -> web.Response | None:
        """The 401 answer for a missing, unknown or expired access token; None when valid."""
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is None:
            return sim_error(401, "SIM-TokenInvalid", "Access token is missing or unknown")
        if self._clock() >= expiry:
            return sim_error(401, "SIM-TokenExpired", "Access token expired")
        return None

    def _basic_auth_ok(self, header: str) -> bool:
        if not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        given_id, _, given_secret = decoded.partition(":")
        expected = self._credentials
        return hmac.compare_digest(given_id.encode(), expected.client_id.encode()) and (
            hmac.compare_digest(given_secret.encode(), expected.client_secret.encode())
        )
