"""The platform side of transfer and hang-up, as the session sees it.

The gateway frames (``transfer``/``hangup``) are always sent; when a platform controller is
configured and knows the call, the platform is asked too, so escalation really hands the
caller over even when the gateway cannot.
"""

from __future__ import annotations

from typing import Protocol

from ai_pipeline.responder import TransferTarget

__all__ = ["PlatformCallControl"]


class PlatformCallControl(Protocol):
    """Transfer or hang up a call on its telephony platform. Never raises."""

    async def transfer(self, call_id: str, target: TransferTarget) -> bool:
        """Returns whether the platform accepted the transfer."""
        ...

    async def hangup(self, call_id: str) -> bool:
        """Returns whether the platform dropped the call."""
        ...
