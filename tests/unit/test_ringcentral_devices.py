"""Reading a device's SIP credentials (readDeviceSipInfo's SipInfoResource)."""

from __future__ import annotations

import pytest

from realtime_voice.ringcentral.devices import DeviceSipInfoError, parse_sip_info, sip_info_path

DOC = {
    "domain": "sip.ringcentral.com",
    "outboundProxies": [
        {"region": "EMEA", "proxy": "sip20.ringcentral.com:5090",
         "proxyTLS": "sip20.ringcentral.com:5096"},
        {"region": "NA", "proxy": "sip10.ringcentral.com:5090",
         "proxyTLS": "sip10.ringcentral.com:5096"},
    ],
    "userName": "16505550100",
    "password": "s3cret",
    "authorizationId": "802398765",
}


def test_reads_the_tls_proxy_of_the_region() -> None:
    info = parse_sip_info(DOC, region="NA")
    assert info.proxy_tls == ("sip10.ringcentral.com", 5096)
    assert (info.domain, info.username, info.authorization_id) == (
        "sip.ringcentral.com", "16505550100", "802398765")
    assert parse_sip_info(DOC).proxy_tls[0] == "sip20.ringcentral.com"
    assert "s3cret" not in repr(info)


@pytest.mark.parametrize(("doc", "message"), [
    ([], "not a JSON object"),
    ({**DOC, "outboundProxies": []}, "outboundProxies"),
    ({**DOC, "password": 7}, "password"),
    ({**DOC, "outboundProxies": [{"proxyTLS": "no-port"}]}, "host:port"),
])
def test_a_missing_field_is_named(doc: object, message: str) -> None:
    with pytest.raises(DeviceSipInfoError, match=message):
        parse_sip_info(doc)


def test_the_path_escapes_the_device_id() -> None:
    assert sip_info_path("80/1") == "/restapi/v1.0/account/~/device/80%2F1/sip-info"
