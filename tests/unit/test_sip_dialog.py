"""Dialog state (RFC 3261 §12) from both sides, and the in-dialog requests it builds."""

from __future__ import annotations

import pytest

from realtime_voice.sip.dialog import Dialog, DialogError, LocalContact
from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import build_response, parse_datagram

LOCAL = LocalContact("10.0.0.5", 50123, "TLS", "16505550100")

INVITE = (
    b"INVITE sip:16505550100@10.0.0.5:50123;transport=TLS;ob SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 104.245.57.165:5096;branch=z9hG4bK-abc\r\n"
    b"Record-Route: <sip:104.245.57.165:5096;transport=tls;lr>\r\n"
    b"Record-Route: <sip:10.13.121.60;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "WIRELESS CALLER" <sip:+16505550199@sip.ringcentral.com>;tag=10.13.121.60+1+b\r\n'
    b"To: <sip:16505550100@sip.ringcentral.com>\r\n"
    b"Call-ID: 7a3b4c@10.13.121.60\r\n"
    b"CSeq: 314 INVITE\r\n"
    b"Contact: <sip:+16505550199@10.13.121.60:5060;transport=tls>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> SipRequest:
    message = parse_datagram(INVITE)
    assert isinstance(message, SipRequest)
    return message


def test_uas_dialog_takes_the_route_set_in_order_and_targets_the_contact() -> None:
    dialog = Dialog.from_uas(_invite(), local_tag="ours")
    assert dialog.remote_tag == "10.13.121.60+1+b"
    assert dialog.remote_cseq == 314
    bye = dialog.request("BYE", LOCAL)
    wire = parse_datagram(bye.serialize())
    assert isinstance(wire, SipRequest)
    assert str(wire.uri) == "sip:+16505550199@10.13.121.60:5060;transport=tls"
    assert wire.headers.values("Route") == ["<sip:104.245.57.165:5096;transport=tls;lr>",
                                            "<sip:10.13.121.60;lr>"]
    assert wire.from_.tag == "ours" and wire.to.tag == "10.13.121.60+1+b"
    assert str(wire.from_.uri) == "sip:16505550100@sip.ringcentral.com"
    assert wire.call_id == "7a3b4c@10.13.121.60"
    assert wire.via[0].transport == "TLS" and (wire.via[0].branch or "").startswith("z9hG4bK")
    assert "Contact" not in wire.headers  # BYE carries none


def test_our_cseq_grows_and_ack_reuses_the_invites() -> None:
    dialog = Dialog.from_uas(_invite())
    first = dialog.request("INFO", LOCAL).cseq.number
    second = dialog.request("REFER", LOCAL, headers=[("Refer-To", "<sip:101@x>")])
    assert second.cseq.number == first + 1
    assert second.headers.get("Contact") == "<sip:16505550100@10.0.0.5:50123;transport=TLS;ob>"
    ack = dialog.request("ACK", LOCAL, cseq=second.cseq.number)
    assert ack.cseq.number == second.cseq.number and ack.cseq.method == "ACK"


def test_the_peers_cseq_must_grow() -> None:
    dialog = Dialog.from_uas(_invite())
    reinvite = _invite()
    reinvite.headers.set("CSeq", "315 INVITE")
    dialog.accept_remote_cseq(reinvite)
    assert dialog.remote_cseq == 315
    reinvite.headers.set("CSeq", "310 BYE")
    with pytest.raises(DialogError):
        dialog.accept_remote_cseq(reinvite)


def test_matching_needs_call_id_and_both_tags() -> None:
    dialog = Dialog.from_uas(_invite(), local_tag="ours")
    bye = _invite()
    bye.headers.set("To", "<sip:16505550100@sip.ringcentral.com>;tag=ours")
    assert dialog.matches(bye)
    bye.headers.set("To", "<sip:16505550100@sip.ringcentral.com>;tag=other")
    assert not dialog.matches(bye)


def test_uac_dialog_reverses_the_route_set() -> None:
    invite = _invite()
    response = build_response(invite, 200, to_tag="them", headers=[
        ("Contact", "<sip:callee@192.0.2.9:5061;transport=tls>"),
        ("Record-Route", "<sip:a;lr>"), ("Record-Route", "<sip:b;lr>")])
    assert isinstance(response, SipResponse)
    dialog = Dialog.from_uac(invite, response)
    assert dialog.route_set == ["<sip:b;lr>", "<sip:a;lr>"]
    assert str(dialog.remote_target) == "sip:callee@192.0.2.9:5061;transport=tls"
    assert dialog.local_cseq == 314


def test_an_invite_without_from_tag_or_contact_is_refused() -> None:
    invite = _invite()
    invite.headers.set("From", "<sip:+16505550199@sip.ringcentral.com>")
    with pytest.raises(DialogError):
        Dialog.from_uas(invite)
    invite = _invite()
    invite.headers.remove("Contact")
    with pytest.raises(DialogError):
        Dialog.from_uas(invite)


def test_the_trace_redacts_digest_responses_and_srtp_keys() -> None:
    from realtime_voice.sip.trace import redact

    request = _invite()
    request.headers.add("Proxy-Authorization", 'Digest username="802398765", '
                        'realm="sip.ringcentral.com", nonce="abc", uri="sip:x", '
                        'response="0123456789abcdef0123456789abcdef", cnonce="c0ffee", nc=00000001')
    request.body = b"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 " \
        b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAoc2VuZGVyRW5jcnlwdGlvbk1ldGhvZA==\r\n"
    text = redact(request)
    assert "0123456789abcdef" not in text and "c0ffee" not in text
    assert "WVNfX19" not in text
    assert 'username="802398765"' in text and "inline:<redacted>" in text
    assert text.startswith("INVITE sip:16505550100@")
