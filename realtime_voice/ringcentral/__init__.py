"""The RingCentral platform client: JWT OAuth, Call Control and webhook subscriptions."""

from __future__ import annotations

from realtime_voice.ringcentral.auth import RingCentralAuth, RingCentralCredentials
from realtime_voice.ringcentral.call_control import CallControlClient, CallTarget
from realtime_voice.ringcentral.client import RingCentralClient
from realtime_voice.ringcentral.errors import (
    RingCentralApiError,
    RingCentralAuthError,
    RingCentralConfigError,
    RingCentralConnectionError,
    RingCentralError,
)
from realtime_voice.ringcentral.subscriptions import Subscription, SubscriptionClient
from realtime_voice.ringcentral.transport import RetryPolicy

__all__ = [
    "CallControlClient",
    "CallTarget",
    "RetryPolicy",
    "RingCentralApiError",
    "RingCentralAuth",
    "RingCentralAuthError",
    "RingCentralClient",
    "RingCentralConfigError",
    "RingCentralConnectionError",
    "RingCentralCredentials",
    "RingCentralError",
    "Subscription",
    "SubscriptionClient",
]
