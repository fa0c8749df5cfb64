"""Fuzzing the SDP layer: `parse` and `answer` only ever raise `SdpError`.

Whatever a peer puts in a body (random text, bytes that are not UTF-8, valid offers with
lines dropped, duplicated, swapped or cut, numbers out of range, odd whitespace), parsing
and answering either succeed or raise `SdpError` with a message; and whatever parses
serializes to a body that parses back to the same model.
"""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.sip.sdp import SdpError, SessionDescription, parse, serialize
from realtime_voice.sip.sdp_negotiation import DEFAULT_CODECS, PCMU, answer, apply_answer, offer
from tests.fuzz import EXAMPLES

KEY = bytes(range(30))
B64 = base64.b64encode(KEY).decode()
SEEDS = [
    [
        "v=0", "o=- 1700000000 1 IN IP4 199.255.120.10", "s=rc-softphone-ts",
        "c=IN IP4 199.255.120.10", "t=0 0", "m=audio 20000 RTP/SAVP 109 111 0 101",
        "a=rtpmap:109 OPUS/16000", "a=rtpmap:111 OPUS/48000/2", "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15", "a=sendrecv", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{B64}",
    ],
    [
        "v=0", "o=- 3141592653 2718281828 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
        "t=0 0", "m=audio 10634 RTP/SAVP 96 0 8 9 101", "b=AS:96", "a=rtpmap:96 opus/48000/2",
        "a=fmtp:96 stereo=1;sprop-stereo=1", "a=rtpmap:101 telephone-event/8000",
        "a=rtcp:10635", "a=rtcp-mux", "a=ssrc:1937496164 cname:sip:bob", "a=mid:0",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{B64}|2^20|1:4",
        f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{B64} KDR=0",
        "a=crypto:3 AEAD_AES_128_GCM inline:" + base64.b64encode(bytes(28)).decode(),
        "m=video 0 RTP/AVP 97", "a=rtpmap:97 H264/90000",
    ],
    [
        "v=0", "o=user1 53655765 2353687637 IN IP4 127.0.0.1", "s=-", "c=IN IP4 0.0.0.0",
        "t=0 0", "a=sendonly", "m=audio 6000 RTP/AVP 0 101", "a=ptime:20", "a=maxptime:40",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
    ],
]
ANY_CHAR = st.characters(codec=None, categories=None)
# The pieces a mutation splices in: SDP's own vocabulary, so changes reach deep parsing.
PIECES = st.sampled_from([
    "", " ", "  ", "\t", "0", "-1", "65536", "99999999999999999999999", "/", ":", "|", ";",
    "=", "==", "\r", "\x00", "٣", "inline:", "a=", "m=audio", "RTP/SAVP", "RTP/AVP", "2^",
    "1:4", "IN IP4", "IN IP6 ::1", "0.0.0.0", "224.0.0.1", "opus/48000/2", "OPUS/16000",
    "telephone-event/8000", "sendonly", "inactive", "rtcp-mux", B64[:20], "🎧", "\u2028", "\x85",
]) | st.text(ANY_CHAR, max_size=6)


@st.composite
def mutated_sdp(draw: st.DrawFn) -> str:
    """A seed body with a few line-level and character-level mutations."""
    lines = list(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "dup", "swap", "cut", "splice", "replace"]))
        line = lines[index]
        if action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "dup":
            lines.insert(index, line)
        elif action == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], line
        elif action == "cut":
            lines[index] = line[: draw(st.integers(0, len(line)))]
        else:
            at = draw(st.integers(0, len(line)))
            end = at if action == "splice" else min(len(line), at + draw(st.integers(1, 8)))
            lines[index] = line[:at] + draw(PIECES) + line[end:]
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    return ending.join(lines) + draw(st.sampled_from([ending, "", ending * 2]))


BODIES = st.one_of(
    mutated_sdp(),
    st.text(ANY_CHAR, max_size=300),
    st.binary(max_size=300),
    st.text(ANY_CHAR, max_size=40).map(lambda t: "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n" + t),
)


def parse_or_explain(body: str | bytes) -> SessionDescription | SdpError:
    """Parse ``body``; an `SdpError` is returned (any other exception escapes)."""
    try:
        return parse(body)
    except SdpError as exc:
        assert str(exc).strip(), "an SdpError must explain itself"
        return exc


@settings(max_examples=2000 * EXAMPLES)
@given(body=BODIES)
def test_parse_raises_only_sdp_error_and_round_trips(body: str | bytes) -> None:
    result = parse_or_explain(body)
    if isinstance(result, SdpError):
        return
    text = serialize(result)
    assert parse(text) == result
    assert serialize(parse(text)) == text


@settings(max_examples=1000 * EXAMPLES)
@given(body=mutated_sdp(), plain=st.booleans())
def test_answer_raises_only_sdp_error(body: str, plain: bool) -> None:
    remote = parse_or_explain(body)
    if isinstance(remote, SdpError):
        return
    try:
        result = answer(remote, address="10.0.0.5", port=40000, key=KEY, allow_plain_rtp=plain)
    except SdpError as exc:
        assert str(exc).strip()
        return
    # Our answer is always one we can parse back, with one stream per offered one.
    assert parse(serialize(result.sdp)) == result.sdp
    assert len(result.sdp.media) == len(remote.media)
    assert result.media.codec in DEFAULT_CODECS
    assert (result.media.srtp is None) == (remote.media[result.media.media_index].proto
                                          .upper() == "RTP/AVP")


@settings(max_examples=1000 * EXAMPLES)
@given(body=mutated_sdp())
def test_apply_answer_raises_only_sdp_error(body: str) -> None:
    remote = parse_or_explain(body)
    if isinstance(remote, SdpError):
        return
    ours = offer(address="10.0.0.5", port=40000, key=KEY, session_id=1)
    plain = offer(address="10.0.0.5", port=40000, key=KEY, codecs=(PCMU,), srtp=False)
    for mine in (ours, plain):
        try:
            media = apply_answer(mine, remote)
        except SdpError as exc:
            assert str(exc).strip()
            continue
        assert media.codec in DEFAULT_CODECS
