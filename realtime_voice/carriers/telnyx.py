"""Telnyx Call Control: transfer and hang-up of a streamed call over Telnyx's REST API.

A Telnyx media stream has no transfer or hang-up frame, so these go through Call
Control (developers.telnyx.com/api-reference/call-commands/transfer-call and
.../hangup-call), addressed by the call's ``call_control_id`` (the stream's
``start.call_control_id``, TeXML's ``CallSid``):

- transfer: ``POST /v2/calls/{call_control_id}/actions/transfer`` with
  ``{"to": "+E164 or sip:URI"}``;
- hang-up: ``POST /v2/calls/{call_control_id}/actions/hangup`` with ``{}``.

Both authenticate with ``Authorization: Bearer <API key>`` and answer
``200 {"data": {"result": "ok"}}``; failures answer ``{"errors": [{"code", "title",
"detail"}]}`` (401 bad key, 404 unknown call, 422 e.g. code ``90018`` "Call has
already ended"). A hang-up of a call that has already ended counts as done: the
caller is gone either way. Telnyx's transfer takes a number or a SIP URI; a
RingCentral-style extension means nothing to it, so such a transfer is refused here
without a request.

Never raises: every failure is a log line naming the call and a ``False``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from ai_pipeline.responder import TransferTarget

__all__ = ["CALL_ENDED_CODE", "DEFAULT_BASE_URL", "TelnyxCallControl"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.telnyx.com"
CALL_ENDED_CODE: Final = "90018"
"""Telnyx's error code for a command on a call that has already ended."""
_MAX_LOGGED_BODY = 300


class TelnyxCallControl:
    """`PlatformCallControl` for Telnyx calls (one per process).

    Args:
        api_key: ``TELNYX_API_KEY``, the Bearer key of the Call Control API.
        base_url: the API's base URL (``TELNYX_API_URL``; tests point it at
            `realtime_voice.testing.telnyx_sim`).
        timeout_s: the whole-request timeout of each command.
    """

    def __init__(
        self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 10.0
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def transfer(self, call_id: str, target: TransferTarget) -> bool:
        """Blind-transfer the call to ``target.phone_number``; returns whether Telnyx accepted."""
        if target.phone_number is None:
            log.error(
                "Telnyx transfer of call %s refused: Telnyx dials numbers or SIP URIs, "
                "not extension %r",
                call_id,
                target.extension_number,
            )
            return False
        status, _ = await self._command(call_id, "transfer", {"to": target.phone_number})
        if status == 200:
            log.info("Telnyx transferred call %s", call_id)
        return status == 200

    async def hangup(self, call_id: str) -> bool:
        """Hang up the call; returns whether it is down (already ended counts)."""
        status, codes = await self._command(call_id, "hangup", {})
        if status == 422 and CALL_ENDED_CODE in codes:
            log.info("Telnyx call %s had already ended", call_id)
            return True
        return status == 200

    async def close(self) -> None:
        """Close the HTTP connection pool (the server's shutdown calls this)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _command(
        self, call_id: str, action: str, body: dict[str, Any]
    ) -> tuple[int | None, set[str]]:
        """POST one action; returns the status (None: no answer) and the error codes."""
        url = f"{self._base_url}/v2/calls/{quote(call_id, safe='')}/actions/{action}"
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        try:
            session = self._client()
            async with session.post(url, json=body, headers=headers) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.error("Telnyx %s of call %s failed: %r", action, call_id, exc)
            return None, set()
        if status == 200:
            return status, set()
        codes = _error_codes(text)
        if not (status == 422 and action == "hangup" and CALL_ENDED_CODE in codes):
            log.error(
                "Telnyx %s of call %s failed: HTTP %d %s",
                action,
                call_id,
                status,
                text[:_MAX_LOGGED_BODY],
            )
        return status, codes

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession must be created inside the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _error_codes(text: str) -> set[str]:
    """The ``errors[].code`` values of a Telnyx error body (none if it is not one)."""
    try:
        body = json.loads(text)
    except (RecursionError, ValueError):
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(e["code"]) for e in errors if isinstance(e, dict) and "code" in e}
