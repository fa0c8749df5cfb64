"""The simulator's devices: ``GET /restapi/v1.0/account/~/device/{deviceId}/sip-info``.

A test registers a device's SIP credentials (`Devices.add`, pointing at a fake SIP edge)
and the server reads them with its JWT app, as from RingCentral: a ``SipInfoResource``
(``domain``, ``outboundProxies[]`` with ``region``/``proxy``/``proxyTLS``, ``userName``,
``password``, ``authorizationId``). Unknown devices answer 404 ``CMN-102``.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from realtime_voice.testing.ringcentral_sim.oauth import TokenIssuer
from realtime_voice.testing.ringcentral_sim.records import sim_error

__all__ = ["DEVICE_PATH", "Devices"]

DEVICE_PATH: Final = "/restapi/v1.0/account/{account}/device/{device_id}/sip-info"


class Devices:
    """SIP info of each device by id, and its route."""

    def __init__(self, auth: TokenIssuer) -> None:
        self._auth = auth
        self.sip_info: dict[str, dict[str, Any]] = {}

    def add(self, device_id: str, *, domain: str, proxy_tls: str, username: str,
            password: str, authorization_id: str, region: str = "NA") -> None:
        """Give a device SIP credentials (``proxy_tls`` as ``host:port``)."""
        host = proxy_tls.rpartition(":")[0]
        self.sip_info[device_id] = {
            "domain": domain,
            "outboundProxies": [{"region": region, "proxy": f"{host}:5090",
                                 "proxyTLS": proxy_tls}],
            "userName": username,
            "password": password,
            "authorizationId": authorization_id,
        }

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the sip-info route."""
        router.add_get(DEVICE_PATH, self._sip_info)

    async def _sip_info(self, request: web.Request) -> web.Response:
        refused = self._auth.bearer_error(request)
        if refused is not None:
            return refused
        info = self.sip_info.get(request.match_info["device_id"])
        if info is None:
            return sim_error(404, "CMN-102", "Resource for parameter [deviceId] is not found")
        return web.json_response(info)
