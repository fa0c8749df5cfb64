"""SDP offer/answer (RFC 3264) for one audio stream with SDES-SRTP (RFC 4568). Pure functions.

A UA calls:

- `answer` for an INVITE (or re-INVITE) with an offer: it returns our answer and the
  `NegotiatedMedia` the RTP layer needs; an `SdpError` becomes 488 Not Acceptable Here
  with the error's message as the reason;
- `offer` for an INVITE without SDP (RingCentral's call queues, docs/RINGCENTRAL_SIP.md
  §3): our 200 carries it, the ACK the answer, which `apply_answer` turns into
  `NegotiatedMedia`;
- `compare` on a re-INVITE, old media against new: hold/unhold, rekey (rebuild SRTP),
  a moved far end, a codec change.

Pass the last SDP we sent in the dialog as ``previous``: the new one keeps its session
id, and its version goes up by one exactly when the body changed (RFC 3264 §8).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace

from realtime_voice.sip.sdp import (
    Connection,
    Crypto,
    CryptoKey,
    Direction,
    Fmtp,
    Media,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
)
from realtime_voice.sip.sdp_media import (
    DEFAULT_CODECS,
    DEFAULT_PTIME,
    OPUS_16000,
    OPUS_48000,
    PCMU,
    SESSION_NAME,
    SRTP_KEY_SIZE,
    SRTP_SUITE,
    TELEPHONE_EVENT,
    Answer,
    Codec,
    MediaChanges,
    NegotiatedMedia,
    SrtpKeys,
)

__all__ = [
    "DEFAULT_CODECS", "OPUS_16000", "OPUS_48000", "PCMU", "SRTP_KEY_SIZE", "SRTP_SUITE",
    "TELEPHONE_EVENT", "Answer", "Codec", "MediaChanges", "NegotiatedMedia", "SrtpKeys",
    "answer", "apply_answer", "compare", "encode_key", "generate_key", "offer", "reanswer",
]

# RFC 3551 static payload types that may come without an rtpmap. Only PCMU is ours; the
# rest are named so that a refusal can say what was offered.
_STATIC = {
    0: RtpMap(0, "PCMU", 8000), 3: RtpMap(3, "GSM", 8000), 4: RtpMap(4, "G723", 8000),
    8: RtpMap(8, "PCMA", 8000), 9: RtpMap(9, "G722", 8000), 18: RtpMap(18, "G729", 8000),
}
# Session parameters that change nothing for a libsrtp session with default settings.
_HARMLESS_PARAM = re.compile(r"WSH=[0-9]{1,9}|KDR=0")
_NULL_ADDRESSES = ("0.0.0.0", "::")  # RFC 2543 hold: "do not send to me"



def generate_key(token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A fresh SRTP master key and salt: one per call and per offer, never reused.

    Args:
        token_bytes: the random source, ``secrets.token_bytes`` unless a test injects one.

    Returns:
        `SRTP_KEY_SIZE` random bytes.
    """
    key = token_bytes(SRTP_KEY_SIZE)
    if len(key) != SRTP_KEY_SIZE:
        raise ValueError(f"the random source gave {len(key)} bytes, not {SRTP_KEY_SIZE}")
    return key


def encode_key(key: bytes) -> str:
    """``key`` as RFC 4568 ``inline:`` base64 (40 characters for a 30-byte key)."""
    return base64.b64encode(key).decode("ascii")


def answer(
    remote_offer: SessionDescription,
    *,
    address: str,
    port: int,
    key: bytes,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    allow_plain_rtp: bool = False,
    previous: SessionDescription | None = None,
    session_id: int | None = None,
) -> Answer:
    """Answer an offer (RFC 3264 §6): one audio stream accepted, every other one refused.

    Args:
        remote_offer: the parsed offer.
        address: our RTP address for ``c=`` (an IP literal).
        port: our RTP port.
        key: our fresh SRTP master key and salt (`generate_key`); unused for plain RTP.
        codecs: what we run, most preferred first; the first one offered wins.
        allow_plain_rtp: accept ``RTP/AVP`` without SRTP (SIPp tests only).
        previous: the last SDP we sent in this dialog, for a re-INVITE.
        session_id: the ``o=`` session id of a new dialog (random when None).

    Returns:
        Our answer and the negotiated media.

    Raises:
        SdpError: nothing in the offer is acceptable; the message says why (for the 488).
        ValueError: our own arguments are wrong (address, port, key).
    """
    _check_local(address, port, key)
    failures: list[str] = []
    chosen: tuple[int, Media, NegotiatedMedia] | None = None
    for index, media in enumerate(remote_offer.media):
        if media.media != "audio" or media.port == 0 or chosen is not None:
            continue
        try:
            chosen = index, media, _accept(remote_offer, index, key, codecs, allow_plain_rtp)
        except SdpError as exc:
            failures.append(str(exc))
    if chosen is None:
        raise SdpError(failures[0] if failures else "the offer has no live audio stream")
    index, offered, negotiated = chosen
    sections = [
        _ours(negotiated, offered, address, port, codecs) if i == index
        # RFC 3264 §6: every offered stream is answered; port 0 refuses it.
        else Media(media=m.media, port=0, proto=m.proto, formats=m.formats)
        for i, m in enumerate(remote_offer.media)
    ]
    sdp = _session(address, sections, previous, session_id)
    return Answer(sdp, negotiated)


def offer(
    *,
    address: str,
    port: int,
    key: bytes,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    telephone_event: Codec | None = TELEPHONE_EVENT,
    srtp: bool = True,
    direction: Direction = Direction.SENDRECV,
    previous: SessionDescription | None = None,
    session_id: int | None = None,
) -> SessionDescription:
    """Our offer, for an INVITE that came without one (the 200 carries it, the ACK answers).

    Args:
        address: our RTP address for ``c=`` (an IP literal).
        port: our RTP port.
        key: our fresh SRTP master key and salt (`generate_key`), in one ``a=crypto:1``.
        codecs: what we run, most preferred first, each under its own payload type.
        telephone_event: the RFC 4733 codec to offer, or None.
        srtp: offer ``RTP/SAVP`` (True) or plain ``RTP/AVP`` (SIPp tests only).
        direction: our direction (sendonly to put the peer on hold).
        previous: the last SDP we sent in this dialog, for a re-INVITE.
        session_id: the ``o=`` session id of a new dialog (random when None).

    Returns:
        The offer; keep it for `apply_answer`.

    Raises:
        ValueError: our own arguments are wrong (address, port, key, clashing PTs).
    """
    _check_local(address, port, key)
    listed = [*codecs, *([telephone_event] if telephone_event else [])]
    if not codecs or len({c.payload_type for c in listed}) != len(listed):
        raise ValueError("offer needs at least one codec, each under its own payload type")
    crypto = (Crypto(1, SRTP_SUITE, (CryptoKey(key),)),) if srtp else ()
    media = Media(
        media="audio", port=port, proto="RTP/SAVP" if srtp else "RTP/AVP",
        formats=tuple(str(c.payload_type) for c in listed),
        rtpmaps=tuple(RtpMap(c.payload_type, c.name, c.clock_rate, c.channels) for c in listed),
        fmtps=tuple(Fmtp(c.payload_type, c.fmtp) for c in listed if c.fmtp),
        ptime=DEFAULT_PTIME, direction=direction, crypto=crypto,
    )
    return _session(address, [media], previous, session_id)


def apply_answer(
    our_offer: SessionDescription,
    remote_answer: SessionDescription,
    *,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
) -> NegotiatedMedia:
    """The media agreed by the peer's answer to our offer (from `offer`).

    Args:
        our_offer: the offer we sent.
        remote_answer: the parsed answer (from the ACK, or a 200 to our re-INVITE).
        codecs: the codecs the offer was made with.

    Returns:
        The negotiated media.

    Raises:
        SdpError: the answer does not fit the offer (streams, codec, crypto tag, profile).
    """
    if len(remote_answer.media) != len(our_offer.media):
        raise SdpError(f"the answer has {len(remote_answer.media)} m= sections, "
                       f"the offer {len(our_offer.media)}")
    for index, (ours, theirs) in enumerate(zip(our_offer.media, remote_answer.media, strict=True)):
        if ours.media != "audio" or ours.port == 0:
            continue
        if theirs.port == 0:
            raise SdpError("the answer refused the audio stream (port 0)")
        if theirs.proto.upper() != ours.proto.upper():
            raise SdpError(f"the answer's profile {theirs.proto} is not the offer's {ours.proto}")
        # An answer may name a PT without an rtpmap (RFC 3264 §6.1: it reuses the offer's).
        known = [*ours.rtpmaps, *theirs.rtpmaps]
        merged = replace(theirs, rtpmaps=tuple({r.payload_type: r for r in known}.values()))
        srtp = _answered_keys(ours, theirs) if ours.crypto else None
        media = _negotiate(remote_answer, merged, index, codecs, srtp)
        # The answer's direction is the peer's; ours is what both sides allow (RFC 3264 §6.1).
        ours_dir, theirs_dir = our_offer.media_direction(ours), media.direction
        mine = Direction.of(sends=ours_dir.sends and theirs_dir.receives,
                            receives=ours_dir.receives and theirs_dir.sends)
        return replace(media, direction=mine)
    raise SdpError("our offer has no audio stream")


def reanswer(
    current: Answer,
    remote_offer: SessionDescription,
    *,
    address: str,
    port: int,
    key: bytes | None = None,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    allow_plain_rtp: bool = False,
) -> tuple[Answer, MediaChanges]:
    """Answer a re-INVITE's offer in a dialog whose SDP and media are ``current``.

    The codec in use stays first choice while the peer still offers it, so that a hold or
    a session refresh does not switch codecs mid-call; our SRTP key stays unless ``key``
    gives a new one. After a delayed offer, ``current`` is ``Answer(our_offer, media)``.

    Args:
        current: the last SDP we sent in the dialog and the media in force.
        remote_offer: the re-INVITE's parsed offer.
        address: our RTP address.
        port: our RTP port.
        key: a new SRTP key for us, or None to keep ours (a fresh one if we had none).
        codecs: what we run, most preferred first.
        allow_plain_rtp: accept ``RTP/AVP`` without SRTP (SIPp tests only).

    Returns:
        Our answer, its o= version bumped only if it changed, and what changed (`compare`).

    Raises:
        SdpError: nothing in the offer is acceptable (answer 488; the call stays as it was).
    """
    media = current.media
    if key is None:
        key = media.srtp.local_key if media.srtp else generate_key()
    ordered = [media.codec, *(c for c in codecs if c != media.codec)]
    result = answer(remote_offer, address=address, port=port, key=key, codecs=ordered,
                    allow_plain_rtp=allow_plain_rtp, previous=current.sdp)
    return result, compare(media, result.media)


def compare(old: NegotiatedMedia, new: NegotiatedMedia) -> MediaChanges:
    """What changed between the media in force and a re-INVITE's.

    Args:
        old: the media in force.
        new: the media the re-INVITE's offer/answer agreed.

    Returns:
        The changes; ``remote_rekey``/``local_rekey`` mean the SRTP sessions are rebuilt.
    """
    old_keys, new_keys = old.srtp, new.srtp
    return MediaChanges(
        hold=new.on_hold and not old.on_hold,
        unhold=old.on_hold and not new.on_hold,
        remote_rekey=_key(old_keys, "remote") != _key(new_keys, "remote"),
        local_rekey=_key(old_keys, "local") != _key(new_keys, "local"),
        remote_moved=(old.remote_address, old.remote_port)
        != (new.remote_address, new.remote_port),
        codec=(old.codec, old.payload_type, old.clock_rate)
        != (new.codec, new.payload_type, new.clock_rate),
        telephone_event=(old.telephone_event_pt, old.telephone_event_clock)
        != (new.telephone_event_pt, new.telephone_event_clock),
        direction=old.direction != new.direction,
    )


def _key(keys: SrtpKeys | None, side: str) -> tuple[str, bytes] | None:
    if keys is None:
        return None
    return keys.suite, keys.remote_key if side == "remote" else keys.local_key


def _check_local(address: str, port: int, key: bytes) -> None:
    ipaddress.ip_address(address)  # ValueError names the bad address
    if not 1 <= port <= 65535:
        raise ValueError(f"RTP port {port} is out of range")
    if len(key) != SRTP_KEY_SIZE:
        raise ValueError(f"an SRTP key is {SRTP_KEY_SIZE} bytes, not {len(key)}")


def _accept(
    offer_sdp: SessionDescription, index: int, key: bytes, codecs: Sequence[Codec],
    allow_plain_rtp: bool,
) -> NegotiatedMedia:
    media = offer_sdp.media[index]
    proto = media.proto.upper()
    if proto == "RTP/AVP":
        if not allow_plain_rtp:
            raise SdpError("plain RTP/AVP refused: this endpoint requires SRTP (RTP/SAVP)")
        srtp = None
    elif proto == "RTP/SAVP":
        srtp = _offered_keys(media, key)
    else:
        raise SdpError(f"unsupported media profile {media.proto} (we take RTP/SAVP)")
    negotiated = _negotiate(offer_sdp, media, index, codecs, srtp)
    return replace(negotiated, direction=negotiated.direction.mirror())


def _offered_keys(media: Media, key: bytes) -> SrtpKeys:
    suites = []
    for crypto in media.crypto:
        suites.append(crypto.suite)
        # No MKI, one key and default session parameters: what our SRTP layer runs.
        usable = len(crypto.keys) == 1 and crypto.keys[0].mki is None and all(
            _HARMLESS_PARAM.fullmatch(p) for p in crypto.session_params
        )
        if crypto.suite == SRTP_SUITE and usable:
            return SrtpKeys(SRTP_SUITE, crypto.tag, key, crypto.keys[0].key_salt)
    named = f" (offered: {', '.join(suites)})" if suites else ""
    raise SdpError(f"RTP/SAVP without a usable a=crypto {SRTP_SUITE} line{named}")


def _answered_keys(ours: Media, theirs: Media) -> SrtpKeys:
    if len(theirs.crypto) != 1:
        raise SdpError(f"the answer has {len(theirs.crypto)} a=crypto lines, not 1")
    crypto = theirs.crypto[0]
    mine = next((c for c in ours.crypto if c.tag == crypto.tag), None)
    if mine is None or mine.suite != crypto.suite or crypto.suite != SRTP_SUITE:
        raise SdpError(f"the answer's a=crypto {crypto.tag} {crypto.suite} is not one we offered")
    if len(crypto.keys) != 1 or crypto.keys[0].mki is not None:
        raise SdpError("the answer's a=crypto key uses an MKI or several keys")
    return SrtpKeys(crypto.suite, crypto.tag, mine.keys[0].key_salt, crypto.keys[0].key_salt)


def _negotiate(
    sdp: SessionDescription, media: Media, index: int, codecs: Sequence[Codec],
    srtp: SrtpKeys | None,
) -> NegotiatedMedia:
    """The far end's stream: address, codec, DTMF, direction (the far end's own view)."""
    conn = sdp.media_connection(media)
    if conn is None:  # parse() guarantees one for a live stream; keep the promise local
        raise SdpError("no c= line for the audio stream")
    address = _remote_address(conn)
    offered = [_rtpmap(media, fmt) for fmt in media.formats]
    chosen = next(((c, r) for c in codecs for r in offered if r and c.matches(r)), None)
    if chosen is None:
        names = ", ".join(f"{r.encoding}/{r.clock_rate}" if r else f"PT {f}"
                          for r, f in zip(offered, media.formats, strict=True))
        ours = ", ".join(str(c) for c in codecs)
        raise SdpError(f"no common codec: offered {names or 'none'}; we support {ours}")
    codec, rtpmap = chosen
    events = [r for r in offered if r and r.encoding.casefold() == "telephone-event"]
    # RFC 4733 §2.1: events share the audio clock; RingCentral pairs OPUS/16000 with 8000.
    event = next((r for r in events if r.clock_rate == rtpmap.clock_rate), None) or next(
        (r for r in events if r.clock_rate == 8000), None)
    direction = sdp.media_direction(media)
    null = address in _NULL_ADDRESSES
    rtcp = media.rtcp.port if media.rtcp else min(media.port + 1, 65535)
    return NegotiatedMedia(
        remote_address=address, remote_port=media.port, remote_rtcp_port=rtcp,
        codec=codec, payload_type=rtpmap.payload_type, clock_rate=rtpmap.clock_rate,
        telephone_event_pt=event.payload_type if event else None,
        telephone_event_clock=event.clock_rate if event else None,
        srtp=srtp, ptime=media.ptime or DEFAULT_PTIME,
        # c=0.0.0.0 is the old way of saying "do not send to me" (RFC 3264 §8.4).
        direction=Direction.of(sends=direction.sends, receives=direction.receives and not null),
        on_hold=null or not direction.receives,
        remote_fmtp=media.fmtp(rtpmap.payload_type), media_index=index,
    )


def _rtpmap(media: Media, fmt: str) -> RtpMap | None:
    pt = int(fmt)  # parse() checked every RTP format is a payload type 0-127
    return media.rtpmap(pt) or _STATIC.get(pt)


def _remote_address(conn: Connection) -> str:
    address = conn.address
    if conn.net_type != "IN" or conn.address_type not in ("IP4", "IP6"):
        raise SdpError(f"unsupported connection {conn.net_type} {conn.address_type}")
    try:
        literal = ipaddress.ip_address(address)
    except ValueError:
        # RFC 8866 allows a host name; the UA resolves it. "/ttl" means multicast.
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})", address):
            raise SdpError(f"unusable connection address {address[:40]!r}") from None
        return address
    if (literal.version == 4) != (conn.address_type == "IP4"):
        raise SdpError(f"address {address} is not {conn.address_type}")
    if literal.is_multicast:
        raise SdpError(f"multicast address {address} is not supported")
    return address


def _ours(
    negotiated: NegotiatedMedia, offered: Media, address: str, port: int,
    codecs: Sequence[Codec],
) -> Media:
    """Our answering section: the chosen codec and DTMF under the offer's PTs (RFC 3264 §6.1)."""
    codec, pt = negotiated.codec, negotiated.payload_type
    # Echo the offer's rtpmap (its spelling, e.g. "OPUS/16000"), or write ours for a static PT.
    rtpmaps = [offered.rtpmap(pt) or RtpMap(pt, codec.name, codec.clock_rate, codec.channels)]
    fmtps = [Fmtp(pt, codec.fmtp)] if codec.fmtp else []
    formats = [str(pt)]
    te = negotiated.telephone_event_pt
    if te is not None:
        formats.append(str(te))
        rtpmaps.append(offered.rtpmap(te) or RtpMap(te, "telephone-event", 8000))
        fmtps.append(Fmtp(te, TELEPHONE_EVENT.fmtp or "0-15"))
    crypto: tuple[Crypto, ...] = ()
    if negotiated.srtp is not None:  # RFC 4568 §7.1.2: the offer's tag and suite, our key
        keys = negotiated.srtp
        crypto = (Crypto(keys.tag, keys.suite, (CryptoKey(keys.local_key),)),)
    return Media(
        media="audio", port=port, proto=offered.proto, formats=tuple(formats),
        rtpmaps=tuple(rtpmaps), fmtps=tuple(fmtps), ptime=DEFAULT_PTIME,
        direction=negotiated.direction, crypto=crypto,
    )


def _session(
    address: str, media: list[Media], previous: SessionDescription | None,
    session_id: int | None,
) -> SessionDescription:
    """Wrap ``media`` in our session lines, versioned against ``previous`` (RFC 3264 §8)."""
    kind = "IP6" if ":" in address else "IP4"
    if previous is not None:
        origin = replace(previous.origin, address=address, address_type=kind)
    else:
        sid = secrets.randbits(62) if session_id is None else session_id
        origin = Origin("-", sid, sid, address, address_type=kind)
    sdp = SessionDescription(
        origin=origin, name=SESSION_NAME, connection=Connection(address, address_type=kind),
        media=tuple(media),
    )
    if previous is not None and sdp != previous:
        # Any change to the body, the o= address included, is a new version.
        sdp = replace(sdp, origin=replace(origin, session_version=origin.session_version + 1))
    return sdp
