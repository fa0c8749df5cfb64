"""Who may read calls and act on them: the one interface every operator route checks.

Transcripts, recordings, live calls and control actions (end, transfer, browser calls)
answer only a request that carries the operator's credentials. Routes take an
`Authorizer` and call it first; the server passes the console's (bearer token or login
session, with cross-site request checks for writes: `webhooks.console_auth`), tests may
pass `bearer_authorizer`.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from realtime_voice.security.shared_secret import secret_matches
from webhooks.errors import json_error

__all__ = ["Authorizer", "bearer_authorizer", "refusal"]


class Authorizer(Protocol):
    """Let an operator's request through, or raise the refusal it gets."""

    async def __call__(self, request: web.Request, *, write: bool = False) -> None:
        """Return if ``request`` carries the operator's credentials.

        Args:
            request: the incoming request.
            write: the request changes something (delete, end, transfer, start a call):
                a cookie session must then also pass the cross-site request checks.

        Raises:
            web.HTTPException: 401 (no or wrong credentials) or 403 (a cross-site write),
                with a JSON body ``{"error": code, "message": ...}`` naming the problem.
        """
        ...


def refusal(status: int, code: str, message: str) -> web.HTTPException:
    """The exception an `Authorizer` raises: a JSON error response as an exception."""
    response = json_error(status, code, message=message)
    exc_type = web.HTTPUnauthorized if status == 401 else web.HTTPForbidden
    # text=, not body=: aiohttp deprecates a body on its HTTP exceptions.
    assert isinstance(response.text, str)
    return exc_type(text=response.text, content_type="application/json",
                    headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def bearer_authorizer(token: str) -> Authorizer:
    """An `Authorizer` that takes only ``Authorization: Bearer <token>`` (API clients)."""
    expected = f"Bearer {token}"

    async def authorize(request: web.Request, *, write: bool = False) -> None:
        if not secret_matches(request.headers.get("Authorization"), expected):
            raise refusal(401, "unauthorized", "missing or wrong bearer token")

    return authorize
