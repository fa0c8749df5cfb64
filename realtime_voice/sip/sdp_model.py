"""The SDP model for the SIP leg: limits, the error type and the parsed description.

Frozen dataclasses that `realtime_voice.sip.sdp` parses into and serializes from, and
that `sdp_negotiation` reasons about. Import them from `realtime_voice.sip.sdp`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_SDP_BYTES = 16 * 1024
"""Largest body parsed: an audio offer is about 1 KB; ICE-laden ones stay well under this."""

MAX_SDP_LINES = 256
"""Most lines parsed (baresip's whole offer is about 30)."""

MAX_SDP_MEDIA = 8
"""Most ``m=`` sections parsed; we answer one audio stream and reject the rest."""


class SdpError(ValueError):
    """A session description we cannot parse or cannot accept.

    The message names the problem (``"m= line 7: port 'x' is not a number"``,
    ``"no common codec: ..."``); a UA answering an offer replies 488 Not Acceptable Here
    with it as the reason. It is the only exception `parse` and the negotiation raise
    for anything a peer sends. The message is made ASCII and at most 200 characters long,
    so that a reason phrase or Warning header built from it is always well-formed.
    """

    def __init__(self, message: str) -> None:
        safe = message.encode("ascii", "backslashreplace").decode("ascii")
        super().__init__(safe if len(safe) <= 200 else safe[:197] + "...")


class Direction(enum.StrEnum):
    """The media direction attribute (RFC 8866 §6.7), from the describing side's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """Whether the side that wrote this direction sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """Whether the side that wrote this direction receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        """The direction with the given send and receive flags."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def mirror(self) -> Direction:
        """The answer's direction for this offered one (RFC 3264 §6.1): sendonly ↔ recvonly."""
        return Direction.of(sends=self.receives, receives=self.sends)


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line: who made the description and which version of it this is."""
    username: str
    session_id: int
    session_version: int
    address: str
    net_type: str = "IN"
    address_type: str = "IP4"


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line. ``address`` is as written (a literal, a host name, or ``addr/ttl``)."""
    address: str
    net_type: str = "IN"
    address_type: str = "IP4"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class Fmtp:
    """``a=fmtp:<pt> <parameters>``, the parameters kept as written."""
    payload_type: int
    parameters: str


@dataclass(frozen=True, slots=True)
class CryptoKey:
    """One RFC 4568 ``inline:`` key parameter.

    Attributes:
        key_salt: the master key followed by the master salt (30 bytes for AES_CM_128).
        lifetime: the optional key lifetime, as written (``"2^31"``).
        mki: the optional ``value:length`` MKI, as written.
    """

    key_salt: bytes
    lifetime: str | None = None
    mki: str | None = None


@dataclass(frozen=True, slots=True)
class Crypto:
    """``a=crypto:<tag> <suite> <key params> [<session params>]`` (RFC 4568 §9.1)."""
    tag: int
    suite: str
    keys: tuple[CryptoKey, ...]
    session_params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RtcpAddress:
    """``a=rtcp:<port> [<connection>]`` (RFC 3605): where the peer wants RTCP."""
    port: int
    connection: Connection | None = None


@dataclass(frozen=True, slots=True)
class Attribute:
    """An attribute we do not model, kept verbatim (``value`` None for a flag)."""
    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """One ``m=`` section. ``formats`` are strings; for RTP profiles they are payload types."""
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    rtpmaps: tuple[RtpMap, ...] = ()
    fmtps: tuple[Fmtp, ...] = ()
    ptime: int | None = None
    maxptime: int | None = None
    direction: Direction | None = None
    crypto: tuple[Crypto, ...] = ()
    rtcp: RtcpAddress | None = None
    rtcp_mux: bool = False
    attributes: tuple[Attribute, ...] = ()
    other_lines: tuple[tuple[str, str], ...] = ()

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The ``a=rtpmap`` of ``payload_type`` in this section, if any."""
        return next((r for r in self.rtpmaps if r.payload_type == payload_type), None)

    def fmtp(self, payload_type: int) -> str | None:
        """The ``a=fmtp`` parameters of ``payload_type`` in this section, if any."""
        return next((f.parameters for f in self.fmtps if f.payload_type == payload_type), None)

    @property
    def is_rtp(self) -> bool:
        """Whether the profile is an RTP one (``RTP/AVP``, ``RTP/SAVP``, ...)."""
        return "RTP/" in self.proto.upper()


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body. Session-level ``c=`` and direction apply where a section has none."""
    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    times: tuple[tuple[int, int], ...] = ((0, 0),)
    direction: Direction | None = None
    attributes: tuple[Attribute, ...] = ()
    other_lines: tuple[tuple[str, str], ...] = ()
    media: tuple[Media, ...] = ()

    def media_direction(self, media: Media) -> Direction:
        """``media``'s direction: its own, else the session's, else sendrecv (RFC 8866 §6.7)."""
        return media.direction or self.direction or Direction.SENDRECV

    def media_connection(self, media: Media) -> Connection | None:
        """``media``'s connection: its own ``c=``, else the session's."""
        return media.connection or self.connection
