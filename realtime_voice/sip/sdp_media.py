"""What SDP negotiation deals in: our codecs, the SDES keys, the negotiated media.

Values only; `sdp_negotiation` computes them and re-exports them, so import them from
there.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime_voice.sip.sdp import Direction, RtpMap, SessionDescription

SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"
"""The one SDES suite we use: what RingCentral sends and libsrtp/pylibsrtp does best."""

SRTP_KEY_SIZE = 30
"""Master key (16 bytes) plus master salt (14 bytes) of `SRTP_SUITE`."""

DEFAULT_PTIME = 20
"""Packet time (ms) we ask for and assume when the peer names none."""

SESSION_NAME = "realtime-voice"


@dataclass(frozen=True, slots=True)
class Codec:
    """An audio codec we can run, and how we offer it.

    Attributes:
        name: the encoding name we write; matched case-insensitively.
        clock_rate: the RTP clock; matched exactly (it sets the timestamp step).
        payload_type: the PT we offer it under (an answer uses the offer's PT).
        channels: the rtpmap channel count we write, if any (RFC 7587 requires 2 for Opus).
        fmtp: the fmtp parameters we write, if any.
    """

    name: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    fmtp: str | None = None

    def matches(self, rtpmap: RtpMap) -> bool:
        """Whether an offered ``rtpmap`` names this codec (name and clock rate)."""
        return rtpmap.encoding.casefold() == self.name.casefold() and (
            rtpmap.clock_rate == self.clock_rate
        )

    def __str__(self) -> str:
        return f"{self.name}/{self.clock_rate}" + (f"/{self.channels}" if self.channels else "")


OPUS_16000 = Codec("OPUS", 16000, 109)
"""RingCentral's non-standard Opus at a 16 kHz RTP clock (its SDK's default, PT 109)."""

# We decode Opus at 16 kHz: telling the peer so saves it encoding wideband it cannot use.
OPUS_48000 = Codec("opus", 48000, 111, channels=2, fmtp="maxplaybackrate=16000;stereo=0")
"""Standard Opus (RFC 7587): always ``opus/48000/2``, clock 48 kHz."""

PCMU = Codec("PCMU", 8000, 0)
"""G.711 µ-law, static PT 0."""

TELEPHONE_EVENT = Codec("telephone-event", 8000, 101, fmtp="0-15")
"""RFC 4733 DTMF events 0-9, *, #, A-D, as RingCentral offers them."""

DEFAULT_CODECS = (OPUS_16000, OPUS_48000, PCMU)
"""Our preference order: RingCentral's wideband Opus first, G.711 last."""



@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The SDES keying of one call.

    Attributes:
        suite: the crypto suite (`SRTP_SUITE`).
        tag: the ``a=crypto`` tag offer and answer share.
        local_key: our master key||salt: protect what we send with it.
        remote_key: the peer's master key||salt: unprotect what we receive with it.
    """

    suite: str
    tag: int
    local_key: bytes
    remote_key: bytes

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"SrtpKeys(suite={self.suite!r}, tag={self.tag})"


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What the RTP layer needs after an offer/answer exchange.

    Attributes:
        remote_address: where to send RTP (a literal or host name; ``0.0.0.0`` on hold).
        remote_port: the peer's RTP port.
        remote_rtcp_port: the peer's RTCP port (``a=rtcp``, else RTP port + 1).
        codec: our codec spec that was chosen.
        payload_type: the PT the codec runs under in this call.
        clock_rate: the RTP clock of that PT.
        telephone_event_pt: the RFC 4733 PT, or None when the peer offered none.
        telephone_event_clock: its clock rate, or None.
        srtp: the keys, or None for plain RTP (only with ``allow_plain_rtp``).
        direction: our direction: whether we may send and should expect to receive.
        ptime: the packet time (ms) to send with.
        on_hold: the peer does not receive our media (sendonly, inactive, or c=0.0.0.0).
        remote_fmtp: the peer's fmtp parameters for the codec (Opus options), or None.
        media_index: which ``m=`` section of the SDP this stream is.
    """

    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    codec: Codec
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    telephone_event_clock: int | None
    srtp: SrtpKeys | None
    direction: Direction
    ptime: int
    on_hold: bool
    remote_fmtp: str | None = None
    media_index: int = 0

    @property
    def sending(self) -> bool:
        """Whether we should send RTP now."""
        return self.direction.sends and not self.on_hold

    @property
    def receiving(self) -> bool:
        """Whether the peer will send us RTP."""
        return self.direction.receives


@dataclass(frozen=True, slots=True)
class Answer:
    """Our answer (`sdp`, serialize it into the 200) and the media it agrees (`media`)."""
    sdp: SessionDescription
    media: NegotiatedMedia


@dataclass(frozen=True, slots=True)
class MediaChanges:
    """What a re-INVITE changed, old media against new (`compare`).

    Attributes:
        hold: the peer has just put us on hold.
        unhold: the peer has just taken us off hold.
        remote_rekey: the peer's key or suite changed: rebuild the inbound SRTP session.
        local_rekey: our key changed: rebuild the outbound SRTP session.
        remote_moved: the peer's RTP address or port changed: send there from now on.
        codec: the codec, its PT or its clock changed: rebuild encoder and decoder.
        telephone_event: the RFC 4733 PT or clock changed.
        direction: our direction changed.
    """

    hold: bool = False
    unhold: bool = False
    remote_rekey: bool = False
    local_rekey: bool = False
    remote_moved: bool = False
    codec: bool = False
    telephone_event: bool = False
    direction: bool = False

    @property
    def any(self) -> bool:
        """Whether anything changed at all (a session refresh changes nothing)."""
        return any((self.hold, self.unhold, self.remote_rekey, self.local_rekey,
                    self.remote_moved, self.codec, self.telephone_event, self.direction))
