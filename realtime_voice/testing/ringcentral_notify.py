"""Deliver webhook notifications the way RingCentral does (for tests, load tests, the sim).

- `validate_webhook` performs the subscription handshake over a raw connection, so the
  reply is judged on its exact bytes: status 200, the ``Validation-Token`` echoed, a JSON
  content type, an empty body and at most 1024 bytes in all (docs/RINGCENTRAL.md §1.2).
- `telephony_notification` builds a telephony session notification shaped like
  RingCentral's (§1.4).
- `WebhookNotifier` posts them with the ``Verification-Token`` header, numbering each
  telephony session's events with an increasing ``body.sequence`` and a fresh ``uuid``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import secrets
import ssl
import time
import uuid as uuidlib
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = [
    "MAX_HANDSHAKE_RESPONSE_BYTES",
    "HandshakeResult",
    "WebhookNotifier",
    "post_notification",
    "telephony_notification",
    "validate_webhook",
]

MAX_HANDSHAKE_RESPONSE_BYTES = 1024
_MAX_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """The webhook's reply to a Validation-Token request, judged as RingCentral would.

    Attributes:
        status: HTTP status code (0 when the reply could not be read).
        echoed_token: the ``Validation-Token`` response header (None when absent).
        content_type: the ``Content-Type`` response header.
        body: the response body.
        raw_size: bytes of the whole response: status line, headers and body.
        elapsed_s: time from sending the request to the end of the reply.
        token: the token that was sent.
        error: why the webhook could not be reached, if it could not.
    """

    status: int
    echoed_token: str | None
    content_type: str | None
    body: bytes
    raw_size: int
    elapsed_s: float
    token: str
    error: str | None = None

    @property
    def problems(self) -> list[str]:
        """Every way the reply fails RingCentral's rules (empty when it passes)."""
        if self.error is not None:
            return [f"not reachable: {self.error}"]
        found = []
        if self.status != 200:
            found.append(f"status {self.status}, expected 200")
        if self.echoed_token != self.token:
            found.append("Validation-Token not echoed")
        if (self.content_type or "").split(";")[0].strip().lower() != "application/json":
            found.append(f"Content-Type {self.content_type!r}, expected application/json")
        if self.body:
            found.append(f"body of {len(self.body)} bytes, expected none")
        if self.raw_size > MAX_HANDSHAKE_RESPONSE_BYTES:
            found.append(f"response of {self.raw_size} bytes, over 1024")
        return found

    @property
    def ok(self) -> bool:
        """The reply passes."""
        return not self.problems


async def validate_webhook(
    url: str, *, token: str | None = None, timeout_s: float = 3.0
) -> HandshakeResult:
    """Send RingCentral's subscription handshake to ``url`` and read the raw reply.

    Args:
        url: the webhook address (http or https).
        token: the Validation-Token to send (random by default).
        timeout_s: RingCentral's limit for the reply.

    Returns:
        What came back, with `HandshakeResult.problems` telling whether it passes.
    """
    token = token or secrets.token_hex(16)
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        f"Validation-Token: {token}\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        "Accept: application/json\r\n"
        "User-Agent: RingCentral-Webhook/8.3\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if secure else None
            )
            try:
                writer.write(request)
                await writer.drain()
                raw = await reader.read(_MAX_READ)
                while len(raw) < _MAX_READ:
                    more = await reader.read(_MAX_READ - len(raw))
                    if not more:
                        break
                    raw += more
            finally:
                writer.close()
                await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        elapsed = time.perf_counter() - started
        return HandshakeResult(0, None, None, b"", 0, elapsed, token, error=str(exc) or "timeout")
    elapsed = time.perf_counter() - started
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        status = 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HandshakeResult(
        status=status,
        echoed_token=headers.get("validation-token"),
        content_type=headers.get("content-type"),
        body=body,
        raw_size=len(raw),
        elapsed_s=elapsed,
        token=token,
    )


def telephony_notification(
    *,
    telephony_session_id: str,
    party_id: str,
    sequence: int,
    status: str,
    reason: str | None = None,
    from_number: str = "+14155550123",
    to_number: str = "+16505550100",
    direction: str = "Inbound",
    uuid: str | None = None,
    account_id: str = "684349005",
    extension_id: str = "684351005",
    subscription_id: str = "41ce2002-063c-4c17-9132-758de6e0bd38",
    missed_call: bool = False,
    sip_call_id: str | None = None,
) -> dict[str, Any]:
    """One telephony session notification for one party, in RingCentral's shape.

    Args:
        telephony_session_id: ``body.telephonySessionId``.
        party_id: ``parties[0].id``.
        sequence: ``body.sequence``.
        status: ``parties[0].status.code`` (``Proceeding``, ``Answered``, ...).
        reason: ``status.reason`` (Disconnected/Gone).
        from_number: caller.
        to_number: dialled number.
        direction: ``Inbound`` or ``Outbound``.
        uuid: notification id (random when None).
        account_id: the subscriber's account.
        extension_id: the subscriber's extension.
        subscription_id: the delivering subscription.
        missed_call: the missed-call flag.
        sip_call_id: ``parties[0].sipData.callId`` (a subscription with ``sipData=true``).
    """
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    status_obj: dict[str, Any] = {"code": status, "rcc": False}
    if reason is not None:
        status_obj["reason"] = reason
    party: dict[str, Any] = {
        "accountId": account_id,
        "extensionId": extension_id,
        "id": party_id,
        "direction": direction,
        "from": {"phoneNumber": from_number, "name": "WIRELESS CALLER"},
        "to": {"phoneNumber": to_number, "name": "Voice Bot", "extensionId": extension_id},
        "status": status_obj,
        "park": {},
        "missedCall": missed_call,
        "standAlone": False,
        "muted": False,
    }
    if sip_call_id is not None:
        party["sipData"] = {"callId": sip_call_id, "toTag": "10.13.121.60+1+a",
                            "fromTag": "1523648719"}
    return {
        "uuid": uuid or str(uuidlib.uuid4().int)[:19],
        "event": f"/restapi/v1.0/account/{account_id}/extension/{extension_id}"
        "/telephony/sessions",
        "timestamp": now,
        "subscriptionId": subscription_id,
        "ownerId": extension_id,
        "body": {
            "sequence": sequence,
            "sessionId": str(zlib.crc32(telephony_session_id.encode())),
            "telephonySessionId": telephony_session_id,
            "serverId": "10.29.20.121.TAM",
            "eventTime": now,
            "parties": [party],
            "origin": {"type": "Call"},
        },
    }


async def post_notification(
    http: aiohttp.ClientSession,
    url: str,
    notification: dict[str, Any] | bytes | str,
    verification_token: str | None,
    *,
    timeout_s: float = 10.0,
) -> int:
    """POST one notification with RingCentral's headers; returns the HTTP status.

    Raises:
        aiohttp.ClientError: the webhook could not be reached.
        TimeoutError: no answer within ``timeout_s``.
    """
    headers = {
        "Content-Type": "application/json; charset=UTF-8",
        "Accept": "application/json",
        "User-Agent": "RingCentral-Webhook/8.3",
    }
    if verification_token is not None:
        headers["Verification-Token"] = verification_token
    data = (
        notification if isinstance(notification, (bytes, str)) else json.dumps(notification)
    )
    async with http.post(
        url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
    ) as resp:
        await resp.read()
        return resp.status


@dataclass
class _Call:
    party_id: str
    from_number: str
    to_number: str
    sip_call_id: str | None = None
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class WebhookNotifier:
    """Posts notifications to one webhook address as RingCentral does.

    Args:
        http: the client session to post with.
        url: the webhook address.
        verification_token: sent as ``Verification-Token`` (None sends no header).
    """

    def __init__(
        self, http: aiohttp.ClientSession, url: str, verification_token: str | None
    ) -> None:
        self._http = http
        self.url = url
        self.verification_token = verification_token
        self._calls: dict[str, _Call] = {}

    def new_call(
        self, *, from_number: str = "+14155550123", to_number: str = "+16505550100",
        sip_call_id: str | None = None,
    ) -> str:
        """Start a telephony session; returns its telephonySessionId.

        ``sip_call_id`` adds ``sipData.callId`` to its notifications (the SIP leg's join).
        """
        tsid = "s-" + secrets.token_hex(16)
        self._calls[tsid] = _Call(f"p-{tsid[2:]}-2", from_number, to_number, sip_call_id)
        return tsid

    def party_id(self, telephony_session_id: str) -> str:
        """The party id of a session started with `new_call`."""
        return self._calls[telephony_session_id].party_id

    def event(
        self, telephony_session_id: str, status: str, reason: str | None = None
    ) -> dict[str, Any]:
        """The next notification of a session started with `new_call` (not sent)."""
        call = self._calls[telephony_session_id]
        return telephony_notification(
            telephony_session_id=telephony_session_id,
            party_id=call.party_id,
            sequence=next(call.sequence),
            status=status,
            reason=reason,
            from_number=call.from_number,
            to_number=call.to_number,
            missed_call=status in ("Disconnected", "Gone") and reason == "Cancelled",
            sip_call_id=call.sip_call_id,
        )

    async def send(self, notification: dict[str, Any] | bytes | str) -> int:
        """POST one notification; returns the HTTP status."""
        return await post_notification(
            self._http, self.url, notification, self.verification_token
        )

    async def status(
        self, telephony_session_id: str, status: str, reason: str | None = None
    ) -> int:
        """Build and send the session's next notification; returns the HTTP status."""
        return await self.send(self.event(telephony_session_id, status, reason))
