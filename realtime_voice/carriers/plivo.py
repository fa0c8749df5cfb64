"""Plivo call control over its REST API: transfer the caller to a human, or hang up.

Both calls are on the call resource ``/v1/Account/{auth_id}/Call/{call_uuid}/`` with
HTTP Basic auth (auth id : auth token):

- transfer (plivo.com/docs/voice/api/call/transfer-a-call): ``POST`` with ``legs=aleg``,
  ``aleg_url`` and ``aleg_method``; Plivo answers ``202`` ``{"message": "call
  transferred", "api_id": ...}`` and the call leaves our stream to fetch and run the
  XML at ``aleg_url``. That URL is ours: the transfer route answers
  ``<Dial><Number>`` for the number signed into it (`webhooks.plivo_answer`);
- hang-up (plivo.com/docs/voice/api/call/hangup-a-call): ``DELETE``; Plivo answers
  ``204``. Without a call UUID the same path would hang up *every* call of the
  account, so an empty id is refused here before any request.

Plivo's Dial dials numbers and SIP endpoints, not extensions: an extension target is
refused (``transfer`` returns False).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import quote

import aiohttp

from ai_pipeline.responder import TransferTarget

__all__ = ["PLIVO_API_URL", "PlivoCallControl"]

log = logging.getLogger(__name__)

PLIVO_API_URL = "https://api.plivo.com"
_CALL_UUID = re.compile(r"[A-Za-z0-9-]{1,64}")


class PlivoCallControl:
    """`PlatformCallControl` for Plivo calls. Never raises.

    Args:
        auth_id: the Plivo auth id (``MA...`` or ``SA...``), also the account in the path.
        auth_token: its auth token.
        transfer_url: ``(call_uuid, number) -> URL`` of our XML that dials ``number``
            (`realtime_voice.security.plivo_signature.transfer_url`, partially applied
            with the public transfer route and the stream secret).
        base_url: the API's base URL (a simulator's in tests).
        timeout_s: the whole-request timeout of each call.
    """

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        transfer_url: Callable[[str, str], str],
        base_url: str = PLIVO_API_URL,
        timeout_s: float = 10.0,
    ) -> None:
        self._auth_id = auth_id
        # HTTP Basic: auth id as the user, auth token as the password.
        self._headers = {"Authorization": aiohttp.encode_basic_auth(auth_id, auth_token)}
        self._transfer_url = transfer_url
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def transfer(self, call_id: str, target: TransferTarget) -> bool:
        """Send the caller (the A leg) to our XML that dials ``target.phone_number``.

        Returns:
            Whether Plivo accepted the transfer (``202``).
        """
        if target.phone_number is None:
            log.error("plivo transfer of call %s refused: Plivo cannot dial an extension", call_id)
            return False
        url = self._call_url(call_id)
        if url is None:
            return False
        body = {
            "legs": "aleg",
            "aleg_url": self._transfer_url(call_id, target.phone_number),
            "aleg_method": "POST",
        }
        ok = await self._request("POST", url, call_id, "transfer", body, (202,))
        if ok:
            log.info("plivo call %s transferred", call_id)
        return ok

    async def hangup(self, call_id: str) -> bool:
        """Hang up the call.

        Returns:
            Whether Plivo dropped it (``204``).
        """
        url = self._call_url(call_id)
        if url is None:
            return False
        return await self._request("DELETE", url, call_id, "hang-up", None, (204,))

    def _call_url(self, call_id: str) -> str | None:
        # An empty id would address the account's every call; an odd one could change
        # the path. Plivo's CallUUIDs are UUIDs.
        if not _CALL_UUID.fullmatch(call_id):
            log.error("plivo call control refused: %r is not a Plivo CallUUID", call_id)
            return None
        account = quote(self._auth_id, safe="")
        return f"{self._base_url}/v1/Account/{account}/Call/{call_id}/"

    async def _request(
        self,
        method: str,
        url: str,
        call_id: str,
        what: str,
        body: dict[str, str] | None,
        accepted: tuple[int, ...],
    ) -> bool:
        try:
            async with (
                aiohttp.ClientSession(headers=self._headers, timeout=self._timeout) as http,
                http.request(method, url, json=body) as resp,
            ):
                if resp.status in accepted:
                    return True
                detail = (await resp.text())[:200]
                log.error(
                    "plivo %s of call %s failed: HTTP %d %s", what, call_id, resp.status, detail
                )
                return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error(
                "plivo %s of call %s failed: %s", what, call_id, str(exc) or type(exc).__name__
            )
            return False
