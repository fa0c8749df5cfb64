"""A device's SIP credentials from the REST API: ``readDeviceSipInfo``.

``GET /restapi/v1.0/account/~/device/{deviceId}/sip-info`` answers a ``SipInfoResource``:
``domain``, ``outboundProxies[]`` (``region``, ``proxy``, ``proxyTLS`` as ``host:port``),
``userName``, ``password`` and ``authorizationId`` (docs/RINGCENTRAL.md, the SIP softphone
section). With ``RC_SIP_DEVICE_ID`` and the JWT app's credentials set, the server reads
these at start instead of taking them from ``RC_SIP_*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from realtime_voice.ringcentral.client import RingCentralClient

__all__ = ["DeviceSipInfo", "DeviceSipInfoError", "read_device_sip_info", "sip_info_path"]


class DeviceSipInfoError(ValueError):
    """The sip-info answer lacks a field we need; the message names it."""


@dataclass(frozen=True)
class DeviceSipInfo:
    """What the SIP leg needs of a device.

    Attributes:
        domain: the SIP domain.
        proxy_tls: the outbound proxy for TLS, ``(host, port)``.
        username: the SIP user name.
        password: the SIP password.
        authorization_id: the digest user name.
    """

    domain: str
    proxy_tls: tuple[str, int]
    username: str
    password: str
    authorization_id: str

    def __repr__(self) -> str:  # the password stays out of logs
        return (f"DeviceSipInfo(domain={self.domain!r}, proxy_tls={self.proxy_tls!r}, "
                f"username={self.username!r})")


def sip_info_path(device_id: str) -> str:
    """The readDeviceSipInfo path for ``device_id``."""
    return f"/restapi/v1.0/account/~/device/{quote(device_id, safe='')}/sip-info"


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DeviceSipInfoError(f"sip-info: {key} missing or not a string")
    return value.strip()


def parse_sip_info(doc: Any, *, region: str | None = None) -> DeviceSipInfo:
    """Read a ``SipInfoResource``; the TLS proxy of ``region`` if given, else the first.

    Raises:
        DeviceSipInfoError: a field is missing or malformed.
    """
    if not isinstance(doc, dict):
        raise DeviceSipInfoError("sip-info: the answer is not a JSON object")
    proxies = doc.get("outboundProxies")
    if not isinstance(proxies, list) or not proxies:
        raise DeviceSipInfoError("sip-info: outboundProxies missing or empty")
    chosen = [p for p in proxies if isinstance(p, dict)
              and (region is None or p.get("region") == region)]
    if not chosen:
        raise DeviceSipInfoError(f"sip-info: no outbound proxy for region {region!r}")
    host, sep, port = _text(chosen[0], "proxyTLS").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeviceSipInfoError("sip-info: proxyTLS is not host:port")
    return DeviceSipInfo(domain=_text(doc, "domain"), proxy_tls=(host, int(port)),
                         username=_text(doc, "userName"), password=_text(doc, "password"),
                         authorization_id=_text(doc, "authorizationId"))


async def read_device_sip_info(client: RingCentralClient, device_id: str) -> DeviceSipInfo:
    """Fetch and read a device's SIP credentials.

    Raises:
        RingCentralApiError: the API refused (404: no such device; 403: not an admin app).
        DeviceSipInfoError: the answer lacks a field.
    """
    return parse_sip_info(await client.request("GET", sip_info_path(device_id)))
