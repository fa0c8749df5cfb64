"""SDP parse/serialize and offer/answer for the SIP leg (docs/RINGCENTRAL_SIP.md §2.4, §3)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest

from realtime_voice.sip.sdp import (
    MAX_SDP_BYTES,
    MAX_SDP_LINES,
    Attribute,
    CryptoKey,
    Direction,
    RtpMap,
    SdpError,
    SessionDescription,
    parse,
    serialize,
)
from realtime_voice.sip.sdp_negotiation import (
    DEFAULT_CODECS,
    OPUS_16000,
    OPUS_48000,
    PCMU,
    SRTP_SUITE,
    Answer,
    Codec,
    MediaChanges,
    answer,
    apply_answer,
    compare,
    encode_key,
    generate_key,
    offer,
    reanswer,
)

KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))
OUR_KEY = bytes(range(200, 230))
B64_A = encode_key(KEY_A)
B64_B = encode_key(KEY_B)
ADDRESS, PORT = "10.0.0.5", 40000


def sdp(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


def rc_offer(
    *, formats: str = "109 101", direction: str = "sendrecv", address: str = "199.255.120.10",
    port: int = 20000, key: str = B64_A, version: int = 1, extra: tuple[str, ...] = (),
) -> str:
    """An offer shaped like RingCentral's SDK template (study §3)."""
    return sdp(
        "v=0", f"o=- 1700000000 {version} IN IP4 {address}", "s=rc-softphone-ts",
        f"c=IN IP4 {address}", "t=0 0", f"m=audio {port} RTP/SAVP {formats}",
        "a=rtpmap:109 OPUS/16000", "a=rtpmap:111 OPUS/48000/2", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", f"a={direction}",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}", *extra,
    )


# baresip 1.0 with mediaenc=srtp-mand (study §2.4): four crypto lines, Opus first.
BARESIP_OFFER = sdp(
    "v=0", "o=- 3141592653 2718281828 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
    "t=0 0", "m=audio 10634 RTP/SAVP 96 0 8 9 101", "b=AS:96",
    "a=rtpmap:96 opus/48000/2", "a=fmtp:96 stereo=1;sprop-stereo=1",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=rtcp:10635",
    "a=sendrecv", "a=label:1", "a=mid:0", "a=rtcp-rsize", "a=ssrc:1937496164 cname:sip:bob",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{B64_B}",
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{B64_A}",
    "a=crypto:3 AEAD_AES_256_GCM inline:" + base64.b64encode(bytes(44)).decode(),
    "a=crypto:4 AEAD_AES_128_GCM inline:" + base64.b64encode(bytes(28)).decode(),
)

SIPP_OFFER = sdp(
    "v=0", "o=user1 53655765 2353687637 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
    "t=0 0", "m=audio 6000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
)


def answer_to(text: str, **kwargs: Any) -> Answer:
    return answer(parse(text), address=ADDRESS, port=PORT, key=OUR_KEY, session_id=42, **kwargs)


def our_offer(**kwargs: Any) -> SessionDescription:
    return offer(address=ADDRESS, port=PORT, key=OUR_KEY, session_id=7, **kwargs)


# --- parse and serialize ----------------------------------------------------------------

def test_parse_ringcentral_offer() -> None:
    d = parse(rc_offer())
    assert (d.name, d.origin.session_version, d.connection and d.connection.address) == (
        "rc-softphone-ts", 1, "199.255.120.10")
    (m,) = d.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 20000, "RTP/SAVP", ("109", "101"))
    assert m.rtpmap(109) == RtpMap(109, "OPUS", 16000)
    assert m.fmtp(101) == "0-15" and m.direction is Direction.SENDRECV
    (c,) = m.crypto
    assert (c.tag, c.suite, c.keys) == (1, SRTP_SUITE, (CryptoKey(KEY_A),))


def test_parse_baresip_offer_keeps_what_it_does_not_model() -> None:
    m = parse(BARESIP_OFFER).media[0]
    assert [c.suite for c in m.crypto][1] == SRTP_SUITE and len(m.crypto) == 4
    assert m.rtcp and m.rtcp.port == 10635 and not m.rtcp_mux
    assert Attribute("rtcp-rsize") in m.attributes
    assert Attribute("ssrc", "1937496164 cname:sip:bob") in m.attributes
    assert ("b", "AS:96") in m.other_lines


@pytest.mark.parametrize("text", [rc_offer(), BARESIP_OFFER, SIPP_OFFER])
def test_serialize_round_trips(text: str) -> None:
    parsed = parse(text)
    assert parse(serialize(parsed)) == parsed
    assert serialize(parsed).endswith("\r\n")


def test_lf_line_endings_and_blank_lines_are_accepted() -> None:
    assert parse(rc_offer().replace("\r\n", "\n") + "\n\n") == parse(rc_offer())


def test_crypto_lifetime_mki_and_session_params_round_trip() -> None:
    d = parse(rc_offer(key=f"{B64_A}|2^20|1:4 KDR=1 UNENCRYPTED_SRTCP"))
    (c,) = d.media[0].crypto
    assert c.keys == (CryptoKey(KEY_A, "2^20", "1:4"),)
    assert c.session_params == ("KDR=1", "UNENCRYPTED_SRTCP")
    assert parse(serialize(d)) == d


def test_unpadded_gcm_key_is_accepted() -> None:
    unpadded = base64.b64encode(bytes(28)).decode().rstrip("=")
    text = rc_offer().replace(f"AES_CM_128_HMAC_SHA1_80 inline:{B64_A}",
                              f"AEAD_AES_128_GCM inline:{unpadded}")
    assert parse(text).media[0].crypto[0].keys[0].key_salt == bytes(28)


def test_session_level_direction_and_connection_apply_to_media() -> None:
    text = sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=x", "c=IN IP4 1.2.3.4", "t=0 0",
               "a=sendonly", "m=audio 5000 RTP/AVP 0")
    d = parse(text)
    assert d.media_direction(d.media[0]) is Direction.SENDONLY
    assert d.media_connection(d.media[0]) == d.connection


MALFORMED = {
    "bad m line": (sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "c=IN IP4 1.2.3.4", "m=audio 5000"),
                   "expected '<media> <port>"),
    "bad port": (rc_offer().replace("m=audio 20000", "m=audio 7x"), "port '7x' is not a number"),
    "port too big": (rc_offer().replace("m=audio 20000", "m=audio 70000"), "port 70000"),
    "bad payload type": (rc_offer(formats="109 abc"), "payload type 'abc'"),
    "bad base64 key": (rc_offer(key="!!!notbase64!!!" * 3), "is not base64"),
    "wrong key length": (rc_offer(key=base64.b64encode(bytes(20)).decode()),
                         "needs a 30-byte key and salt, got 20"),
    "missing c=": (rc_offer().replace("c=IN IP4 199.255.120.10\r\n", ""), "no c= line"),
    "no v=": (rc_offer().replace("v=0\r\n", ""), "must begin with v=0"),
    "no o=": (rc_offer().replace("o=- 1700000000 1 IN IP4 199.255.120.10\r\n", ""), "no o="),
    "empty": ("", "empty body"),
    "garbage line": (rc_offer() + "hello\r\n", "not a <type>=<value> line"),
    "bad rtpmap": (rc_offer(extra=("a=rtpmap:96 opus",)), "bad encoding"),
    "duplicate rtpmap": (rc_offer(extra=("a=rtpmap:109 PCMU/8000",)), "second rtpmap"),
    "two directions": (rc_offer(extra=("a=sendonly",)), "second direction"),
    "bad key method": (rc_offer().replace("inline:", "uri:"), "is not 'inline'"),
    "bad lifetime": (rc_offer(key=f"{B64_A}|forever"), "bad key lifetime"),
    "unicode digits": (rc_offer().replace("m=audio 20000", "m=audio ٣٠٠٠"), "not a number"),
    "NUL": (rc_offer(extra=("a=x:\x00",)), "stray CR or NUL"),
    "bad ptime": (rc_offer(extra=("a=ptime:soon",)), "bad packet time"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_sdp_raises_sdp_error_naming_the_problem(name: str) -> None:
    text, words = MALFORMED[name]
    with pytest.raises(SdpError) as caught:
        parse(text)
    assert words in str(caught.value)


def test_limits() -> None:
    with pytest.raises(SdpError, match="byte limit"):
        parse(rc_offer(extra=("a=x:" + "y" * MAX_SDP_BYTES,)))
    with pytest.raises(SdpError, match="line limit"):
        parse(rc_offer(extra=("a=x",) * MAX_SDP_LINES))
    with pytest.raises(SdpError, match="UTF-8"):
        parse(b"v=0\r\ns=\xff\r\n")
    with pytest.raises(SdpError, match="UTF-8"):
        parse("v=0\r\ns=\ud800\r\n")


# --- answer -------------------------------------------------------------------------------

def test_answer_ringcentral_offer_with_opus16() -> None:
    result = answer_to(rc_offer())
    media = result.media
    assert (media.remote_address, media.remote_port, media.remote_rtcp_port) == (
        "199.255.120.10", 20000, 20001)
    assert (media.codec, media.payload_type, media.clock_rate) == (OPUS_16000, 109, 16000)
    assert (media.telephone_event_pt, media.telephone_event_clock) == (101, 8000)
    assert media.srtp and (media.srtp.tag, media.srtp.remote_key, media.srtp.local_key) == (
        1, KEY_A, OUR_KEY)
    assert (media.direction, media.on_hold, media.sending, media.ptime) == (
        Direction.SENDRECV, False, True, 20)
    text = serialize(result.sdp)
    assert "m=audio 40000 RTP/SAVP 109 101\r\n" in text
    assert "a=rtpmap:109 OPUS/16000\r\n" in text and "a=fmtp:101 0-15\r\n" in text
    assert f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{encode_key(OUR_KEY)}\r\n" in text
    assert "c=IN IP4 10.0.0.5\r\n" in text and "o=- 42 42 IN IP4 10.0.0.5\r\n" in text
    assert len(encode_key(OUR_KEY)) == 40
    assert parse(text) == result.sdp


@pytest.mark.parametrize(("codecs", "expected"), [
    (DEFAULT_CODECS, (OPUS_16000, 109)),
    ((OPUS_48000, OPUS_16000, PCMU), (OPUS_48000, 111)),
    ((PCMU,), (PCMU, 0)),
])
def test_answer_follows_our_preference_order(
    codecs: tuple[Codec, ...], expected: tuple[Codec, int]
) -> None:
    media = answer_to(rc_offer(formats="109 111 0 101"), codecs=codecs).media
    assert (media.codec, media.payload_type) == expected


def test_answer_baresip_offer_picks_opus_and_the_80_bit_crypto_line() -> None:
    result = answer_to(BARESIP_OFFER, codecs=(OPUS_48000, PCMU))
    media = result.media
    assert (media.codec, media.payload_type, media.clock_rate) == (OPUS_48000, 96, 48000)
    assert media.remote_fmtp == "stereo=1;sprop-stereo=1" and media.remote_rtcp_port == 10635
    assert media.srtp and (media.srtp.tag, media.srtp.remote_key) == (2, KEY_A)
    text = serialize(result.sdp)
    assert "m=audio 40000 RTP/SAVP 96 101\r\n" in text and "a=rtpmap:96 opus/48000/2" in text
    assert "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" in text and text.count("a=crypto") == 1


def test_pcmu_only_offer_with_static_pt_and_no_rtpmap() -> None:
    text = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               "m=audio 30000 RTP/SAVP 0", f"a=crypto:7 {SRTP_SUITE} inline:{B64_A}")
    result = answer_to(text)
    assert (result.media.codec, result.media.payload_type, result.media.telephone_event_pt) == (
        PCMU, 0, None)
    assert "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000" in serialize(result.sdp)
    assert "a=crypto:7 " in serialize(result.sdp)


def test_plain_rtp_from_sipp_is_refused_by_default_and_accepted_with_the_flag() -> None:
    with pytest.raises(SdpError, match="plain RTP/AVP refused"):
        answer_to(SIPP_OFFER)
    result = answer_to(SIPP_OFFER, allow_plain_rtp=True)
    assert result.media.srtp is None and result.media.codec == PCMU
    assert result.media.telephone_event_pt == 101
    assert "RTP/AVP 0 101" in serialize(result.sdp) and "crypto" not in serialize(result.sdp)


@pytest.mark.parametrize(("text", "words"), [
    (rc_offer(formats="8 9").replace("a=rtpmap:109", "a=rtpmap:8 PCMA/8000\r\na=rtpmap:109"),
     "no common codec: offered PCMA/8000, G722/8000; we support OPUS/16000"),
    (rc_offer(key=f"{B64_A}|1:4"), "without a usable a=crypto"),
    (rc_offer().replace("HMAC_SHA1_80", "HMAC_SHA1_32"), "offered: AES_CM_128_HMAC_SHA1_32"),
    (rc_offer(extra=()).replace("a=crypto", "a=x-crypto"), "RTP/SAVP without a usable"),
    (rc_offer().replace("RTP/SAVP", "UDP/TLS/RTP/SAVPF"), "unsupported media profile"),
    (rc_offer().replace("m=audio 20000", "m=audio 0"), "no live audio stream"),
    (rc_offer().replace("m=audio", "m=video"), "no live audio stream"),
    (rc_offer(address="224.2.1.1"), "multicast"),
])
def test_unacceptable_offers_raise_sdp_error_for_a_488(text: str, words: str) -> None:
    with pytest.raises(SdpError) as caught:
        answer_to(text)
    assert words in str(caught.value)


def test_other_streams_are_refused_with_port_zero() -> None:
    text = rc_offer() + sdp("m=video 20002 RTP/SAVP 97", "a=rtpmap:97 H264/90000")
    result = answer_to(text)
    assert [(m.media, m.port) for m in result.sdp.media] == [("audio", 40000), ("video", 0)]
    assert parse(serialize(result.sdp)) == result.sdp


@pytest.mark.parametrize(("offered", "ours", "hold"), [
    ("sendrecv", Direction.SENDRECV, False),
    ("sendonly", Direction.RECVONLY, True),
    ("recvonly", Direction.SENDONLY, False),
    ("inactive", Direction.INACTIVE, True),
])
def test_answer_mirrors_direction(offered: str, ours: Direction, hold: bool) -> None:
    result = answer_to(rc_offer(direction=offered))
    assert (result.media.direction, result.media.on_hold) == (ours, hold)
    assert f"a={ours}\r\n" in serialize(result.sdp)


def test_null_connection_address_is_hold() -> None:
    media = answer_to(rc_offer(address="0.0.0.0")).media
    assert media.on_hold and not media.sending and media.direction is Direction.RECVONLY


# --- delayed offer ----------------------------------------------------------------------

def test_delayed_offer_round_trip() -> None:
    ours = our_offer()
    text = serialize(ours)
    assert "m=audio 40000 RTP/SAVP 109 111 0 101\r\n" in text
    assert "a=rtpmap:111 opus/48000/2\r\n" in text and "a=fmtp:101 0-15\r\n" in text
    assert text.count("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") == 1
    # The peer (RingCentral's SDK template) answers with its configured codec.
    media = apply_answer(parse(text), parse(rc_offer(formats="0 101", key=B64_B)))
    assert (media.codec, media.payload_type, media.telephone_event_pt) == (PCMU, 0, 101)
    assert media.srtp and (media.srtp.local_key, media.srtp.remote_key) == (OUR_KEY, KEY_B)
    assert media.remote_address == "199.255.120.10" and media.direction is Direction.SENDRECV


def test_apply_answer_direction_is_what_both_sides_allow() -> None:
    ours = our_offer(direction=Direction.SENDONLY)
    media = apply_answer(ours, parse(rc_offer(direction="recvonly")))
    assert (media.direction, media.on_hold) == (Direction.SENDONLY, False)
    media = apply_answer(our_offer(), parse(rc_offer(direction="sendonly")))
    assert (media.direction, media.on_hold) == (Direction.RECVONLY, True)


@pytest.mark.parametrize(("remote", "words"), [
    (rc_offer().replace("a=crypto:1", "a=crypto:2"), "not one we offered"),
    (rc_offer().replace("m=audio 20000", "m=audio 0"), "refused the audio stream"),
    (rc_offer().replace("RTP/SAVP", "RTP/AVP"), "is not the offer's"),
    (rc_offer(formats="8"), "no common codec"),
    (rc_offer() + sdp("m=video 1 RTP/AVP 97"), "2 m= sections"),
])
def test_bad_answers_to_our_offer(remote: str, words: str) -> None:
    with pytest.raises(SdpError) as caught:
        apply_answer(our_offer(), parse(remote))
    assert words in str(caught.value)


def test_plain_offer_for_sipp() -> None:
    ours = our_offer(codecs=(PCMU,), srtp=False)
    assert "RTP/AVP 0 101" in serialize(ours) and not ours.media[0].crypto
    assert apply_answer(ours, parse(SIPP_OFFER)).srtp is None
    with pytest.raises(ValueError, match="own payload type"):
        our_offer(codecs=(PCMU, replace(OPUS_16000, payload_type=0)))


# --- re-INVITE ----------------------------------------------------------------------------

def reinvite(first: Answer, text: str, **kwargs: Any) -> tuple[Answer, MediaChanges]:
    return reanswer(first, parse(text), address=ADDRESS, port=PORT, **kwargs)


def test_session_refresh_changes_nothing_and_keeps_the_version() -> None:
    first = answer_to(rc_offer())
    second, changes = reinvite(first, rc_offer(version=2))
    assert not changes.any and second.sdp == first.sdp


def test_hold_and_unhold() -> None:
    first = answer_to(rc_offer())
    held, changes = reinvite(first, rc_offer(direction="sendonly", version=2))
    assert changes == MediaChanges(hold=True, direction=True)
    assert held.sdp.origin.session_version == first.sdp.origin.session_version + 1
    assert held.sdp.origin.session_id == first.sdp.origin.session_id
    back, changes = reinvite(held, rc_offer(version=3))
    assert changes == MediaChanges(unhold=True, direction=True)
    assert back.sdp.origin.session_version == held.sdp.origin.session_version + 1


def test_rekey_is_detected_and_our_key_kept_unless_renewed() -> None:
    first = answer_to(rc_offer())
    second, changes = reinvite(first, rc_offer(key=B64_B, version=2))
    assert changes == MediaChanges(remote_rekey=True)
    assert second.media.srtp and second.media.srtp.remote_key == KEY_B
    assert second.sdp == first.sdp  # our side of the body did not change
    third, changes = reinvite(second, rc_offer(key=B64_B, version=3), key=KEY_A)
    assert changes == MediaChanges(local_rekey=True)
    assert third.sdp.origin.session_version == first.sdp.origin.session_version + 1


def test_address_change_and_codec_stickiness() -> None:
    first = answer_to(rc_offer(formats="0 101"))
    moved, changes = reinvite(first, rc_offer(formats="109 0 101", address="203.0.113.9",
                                              port=30000))
    assert changes == MediaChanges(remote_moved=True)  # PCMU stays although 109 is preferred
    assert moved.media.codec == PCMU
    switched, changes = reinvite(moved, rc_offer(formats="109 101", address="203.0.113.9",
                                                 port=30000))
    assert changes == MediaChanges(codec=True) and switched.media.codec == OPUS_16000


def test_compare_sees_telephone_event_loss() -> None:
    first = answer_to(rc_offer())
    assert compare(first.media, answer_to(rc_offer(formats="109")).media) == MediaChanges(
        telephone_event=True)


def test_generate_key_uses_the_injected_source() -> None:
    assert generate_key(lambda n: b"\x01" * n) == b"\x01" * 30
    assert len(generate_key()) == 30 and generate_key() != generate_key()
    with pytest.raises(ValueError, match="gave 3 bytes"):
        generate_key(lambda n: b"abc")


def test_keys_stay_out_of_repr() -> None:
    media = answer_to(rc_offer()).media
    assert B64_A not in repr(media) and repr(KEY_A) not in repr(media)
