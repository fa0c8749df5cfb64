"""The control-plane user: RingCentral notifications and inbound answers at a steady rate.

Each `WebhookUser` sends ``--webhook-rate`` requests per second (locust's
``constant_throughput``), whatever the server's response time, in this mix:

- 6 in 10: telephony session notifications to ``POST /api/ringcentral/webhook``, exactly
  as RingCentral delivers them (shape and headers of `ringcentral_notify`): one session
  after another goes ``Proceeding`` → ``Answered`` → ``Disconnected`` with an increasing
  ``body.sequence`` and a fresh ``uuid`` each; every one must be answered 200.
- 3 in 10: inbound-call answers, ``POST /api/voice/inbound`` for a new call id; the
  answer must carry a signed media URL. No media connection follows, so each answer
  holds a ringing slot of the server's capacity (``VOICE_MAX_CALLS``) until the stream
  token expires (``VOICE_STREAM_TOKEN_TTL``, 60 s): keep rate × 0.3 × 60 well under it.
- 1 in 10: the subscription handshake (``Validation-Token``), which must be echoed.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

from locust_voice.options import read_options
from locust_voice.ringcentral_caller import INBOUND_PATH, inbound_body, media_url_of
from realtime_voice.testing.ringcentral_notify import telephony_notification

__all__ = ["NOTIFICATIONS_PATH", "WebhookUser"]

NOTIFICATIONS_PATH = "/api/ringcentral/webhook"
_LIFECYCLE = (("Proceeding", None), ("Answered", None), ("Disconnected", "CallFinished"))
_RC_HEADERS = {
    "Content-Type": "application/json; charset=UTF-8",
    "Accept": "application/json",
    "User-Agent": "RingCentral-Webhook/8.3",
}


@dataclass
class _Session:
    telephony_session_id: str = field(default_factory=lambda: "s-" + secrets.token_hex(16))
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    step: int = 0

    @property
    def party_id(self) -> str:
        return f"p-{self.telephony_session_id[2:]}-2"


class WebhookUser(FastHttpUser):
    """A telephony platform calling the webhooks at a steady rate."""

    fixed_count = 1

    def on_start(self) -> None:
        """Read the rate and token; start the first telephony session."""
        options = read_options(self.environment)
        self._pacing: Callable[[FastHttpUser], float] = constant_throughput(options.webhook_rate)
        self._headers = dict(_RC_HEADERS)
        if options.rc_verification_token:
            self._headers["Verification-Token"] = options.rc_verification_token
        self._session = _Session()

    def wait_time(self) -> float:
        """Seconds to wait so this user keeps ``--webhook-rate`` requests per second."""
        return self._pacing(self)

    @task(6)
    def notification(self) -> None:
        """Send the current telephony session's next event (a new session after the end)."""
        session = self._session
        status, reason = _LIFECYCLE[session.step]
        body = telephony_notification(
            telephony_session_id=session.telephony_session_id,
            party_id=session.party_id,
            sequence=next(session.sequence),
            status=status,
            reason=reason,
        )
        with self.client.post(
            NOTIFICATIONS_PATH,
            data=json.dumps(body),
            headers=self._headers,
            name=f"{NOTIFICATIONS_PATH} {status}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            else:
                response.success()
        session.step += 1
        if session.step == len(_LIFECYCLE):
            self._session = _Session()

    @task(3)
    def inbound_answer(self) -> None:
        """Ask for an inbound-call answer and check it carries a signed media URL."""
        headers = {}
        if "Verification-Token" in self._headers:
            headers["Verification-Token"] = self._headers["Verification-Token"]
        with self.client.post(
            INBOUND_PATH,
            json=inbound_body(f"lt-hook-{secrets.token_hex(8)}"),
            headers=headers,
            name=f"{INBOUND_PATH} (webhook)",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            try:
                media_url_of(response.json())
            except ValueError as exc:
                response.failure(str(exc))
                return
            response.success()

    @task(1)
    def validation_handshake(self) -> None:
        """RingCentral's subscription handshake: the token must come back in a header."""
        token = secrets.token_hex(16)
        with self.client.post(
            NOTIFICATIONS_PATH,
            data="",
            headers={**_RC_HEADERS, "Validation-Token": token},
            name=f"{NOTIFICATIONS_PATH} Validation-Token",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif response.headers.get("Validation-Token") != token:
                response.failure("Validation-Token not echoed")
            else:
                response.success()
