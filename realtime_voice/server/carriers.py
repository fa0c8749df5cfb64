"""The stream carriers' pieces put together: answer webhooks and REST call control.

Each carrier contributes an answer endpoint on the HTTP plane (Exotel's applet URL,
Telnyx's TeXML, Plivo's answer XML, Vonage's NCCO and event URL) and, when its API
credentials are configured, a `PlatformCallControl` that the media plane uses for that
carrier's calls, so that a transfer or a hang-up really happens on the carrier even
though the stream itself has no message for it. Without credentials the bot ends the
stream after its last words and the carrier's markup decides what follows
(docs/carriers/*.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from realtime_voice.carriers.plivo import PlivoCallControl
from realtime_voice.carriers.telnyx import TelnyxCallControl
from realtime_voice.carriers.vonage import VonageCallControl
from realtime_voice.config import Settings
from realtime_voice.legs.base import PlatformCallControl
from realtime_voice.security.plivo_signature import transfer_url
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import CallSessionManager
from webhooks.exotel_answer import ExotelAnswerHandler, add_exotel_routes
from webhooks.plivo_answer import (
    PLIVO_TRANSFER_PATH,
    PlivoAnswerHandler,
    PlivoTransferHandler,
    add_plivo_routes,
)
from webhooks.telnyx_answer import TelnyxAnswerHandler, add_telnyx_routes
from webhooks.vonage_answer import VonageAnswerHandler, add_vonage_routes

__all__ = ["add_carrier_routes", "build_carrier_controls", "close_carrier_controls"]


def build_carrier_controls(
    settings: Settings, public_http_url: Callable[[], str]
) -> dict[str, PlatformCallControl]:
    """Each configured carrier's REST call control, by carrier name.

    Args:
        settings: the server settings (``settings.carriers``).
        public_http_url: the HTTP plane's public base URL, read when needed (Plivo
            fetches the transfer XML from it).
    """
    carriers = settings.carriers
    controls: dict[str, PlatformCallControl] = {}
    if carriers.telnyx_api_key is not None:
        controls["telnyx"] = TelnyxCallControl(
            carriers.telnyx_api_key, base_url=carriers.telnyx_api_url
        )
    if carriers.plivo_auth_id is not None and carriers.plivo_auth_token is not None:
        secret = settings.stream_secret.encode()

        def plivo_transfer_url(call_uuid: str, number: str) -> str:
            return transfer_url(
                public_http_url() + PLIVO_TRANSFER_PATH, secret, call_uuid, number
            )

        controls["plivo"] = PlivoCallControl(
            carriers.plivo_auth_id,
            carriers.plivo_auth_token,
            transfer_url=plivo_transfer_url,
            base_url=carriers.plivo_api_url,
        )
    if carriers.vonage_application_id is not None and carriers.vonage_private_key is not None:
        controls["vonage"] = VonageCallControl(
            carriers.vonage_application_id,
            carriers.vonage_private_key,
            base_url=carriers.vonage_api_url,
        )
    return controls


async def close_carrier_controls(controls: Mapping[str, PlatformCallControl]) -> None:
    """Close the controls' HTTP connection pools (at shutdown)."""
    for control in controls.values():
        close = getattr(control, "close", None)
        if close is not None:
            await close()


def add_carrier_routes(
    app: web.Application,
    settings: Settings,
    manager: CallSessionManager,
    tokens: StreamTokenIssuer,
    media_url: Callable[[], str],
) -> None:
    """Register the four carriers' answer endpoints (docs/PROTOCOLS.md §7)."""
    carriers = settings.carriers
    public = settings.public_http_url
    add_exotel_routes(
        app,
        ExotelAnswerHandler(manager, tokens, media_url, basic_auth=carriers.exotel_basic_auth),
    )
    add_telnyx_routes(
        app,
        TelnyxAnswerHandler(manager, tokens, media_url, public_key=carriers.telnyx_public_key),
    )
    add_plivo_routes(
        app,
        PlivoAnswerHandler(
            manager, tokens, media_url,
            auth_token=carriers.plivo_auth_token, public_http_url=public,
        ),
        PlivoTransferHandler(
            settings.stream_secret.encode(),
            auth_token=carriers.plivo_auth_token, public_http_url=public,
        ),
    )
    add_vonage_routes(
        app,
        VonageAnswerHandler(
            manager, tokens, media_url,
            signature_secret=carriers.vonage_signature_secret, public_http_url=public,
        ),
    )
