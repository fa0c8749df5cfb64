"""Vonage Voice REST API: transfer and hang-up of a call that is streaming to us.

A Vonage WebSocket has no transfer or hang-up message, so these go through the Voice
API's "modify call" request, ``PUT /v1/calls/{uuid}`` on ``https://api.nexmo.com``
(developer.vonage.com/en/api/voice#updateCall; the official Python SDK's
``Voice.transfer_call_ncco`` and ``Voice.hangup`` send exactly these bodies):

- transfer: ``{"action": "transfer", "destination": {"type": "ncco", "ncco": [
  {"action": "connect", "endpoint": [{"type": "phone", "number": "447700900000"}]}]}}``:
  the call leaves our WebSocket's NCCO and runs the new one, which dials the human;
- hang-up: ``{"action": "hangup"}``.

Both authenticate with ``Authorization: Bearer <application JWT>`` (RS256, minted per
request by `realtime_voice.carriers.vonage_jwt.VonageJwtMinter`) and succeed with
``204 No Content``. Vonage's phone endpoint takes E.164 digits without the ``+``, so a
leading ``+`` is dropped. A RingCentral-style extension means nothing to Vonage: such a
transfer is refused here without a request.

Never raises: every failure is a log line naming the call and a ``False``.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from ai_pipeline.responder import TransferTarget
from realtime_voice.carriers.vonage_jwt import VonageJwtMinter

__all__ = ["DEFAULT_BASE_URL", "VonageCallControl", "transfer_body"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.nexmo.com"
_MAX_LOGGED_BODY = 300
_OK: Final = frozenset({200, 204})


def transfer_body(number: str) -> dict[str, Any]:
    """The modify-call body that transfers the call to ``number`` (``+`` dropped)."""
    endpoint = {"type": "phone", "number": number.removeprefix("+")}
    ncco = [{"action": "connect", "endpoint": [endpoint]}]
    return {"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}}


class VonageCallControl:
    """`PlatformCallControl` for Vonage calls (one per process).

    Args:
        application_id: the Vonage application's id (``VONAGE_APPLICATION_ID``).
        private_key_pem: its RSA private key, PEM (``VONAGE_PRIVATE_KEY``).
        base_url: the API's base URL (tests point it at
            `realtime_voice.testing.vonage_sim`).
        timeout_s: the whole-request timeout of each command.

    Raises:
        ValueError: an empty application id or a key that is not an RSA private key.
    """

    def __init__(
        self,
        application_id: str,
        private_key_pem: str | bytes,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
    ) -> None:
        self._minter = VonageJwtMinter(application_id, private_key_pem)
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def transfer(self, call_id: str, target: TransferTarget) -> bool:
        """Transfer the call to ``target.phone_number``; returns whether Vonage accepted."""
        if target.phone_number is None:
            log.error(
                "Vonage transfer of call %s refused: Vonage dials phone numbers, not extension %r",
                call_id,
                target.extension_number,
            )
            return False
        ok = await self._modify(call_id, "transfer", transfer_body(target.phone_number))
        if ok:
            log.info("Vonage transferred call %s", call_id)
        return ok

    async def hangup(self, call_id: str) -> bool:
        """Hang up the call; returns whether Vonage accepted."""
        return await self._modify(call_id, "hangup", {"action": "hangup"})

    async def close(self) -> None:
        """Close the HTTP connection pool (the server's shutdown calls this)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _modify(self, call_id: str, action: str, body: dict[str, Any]) -> bool:
        """``PUT /v1/calls/{uuid}``; True on 2xx (Vonage documents 204)."""
        url = f"{self._base_url}/v1/calls/{quote(call_id, safe='')}"
        try:
            headers = {
                "Authorization": f"Bearer {self._minter.mint()}",
                "Accept": "application/json",
            }
            session = self._client()
            async with session.put(url, json=body, headers=headers) as resp:
                status = resp.status
                text = "" if status in _OK else await resp.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.error("Vonage %s of call %s failed: %r", action, call_id, exc)
            return False
        if status in _OK:
            return True
        log.error(
            "Vonage %s of call %s failed: HTTP %d %s",
            action,
            call_id,
            status,
            text[:_MAX_LOGGED_BODY],
        )
        return False

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession must be created inside the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session
