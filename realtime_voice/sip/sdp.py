"""Session descriptions (SDP, RFC 8866) for the SIP leg: `parse` and `serialize`.

Sans-I/O and stdlib only. The subset is what RingCentral's edge, baresip and SIPp send
(docs/RINGCENTRAL_SIP.md §2.4, §3): ``v o s c t m`` lines and the attributes ``rtpmap``,
``fmtp``, ``ptime``, ``maxptime``, the four directions, ``crypto`` (RFC 4568 SDES),
``rtcp`` and ``rtcp-mux``. Anything else (``b=``, ``a=ssrc``, ``a=mid``, ICE...) is kept
verbatim, so a description re-serializes without loss of what we model.

`parse` accepts CRLF or LF line endings, enforces size and line limits, and raises only
`SdpError`, whose message names the problem, on any input whatsoever (the fuzz tests in
tests/fuzz/test_fuzz_sdp.py hold it to that). The model itself is in `sdp_model` and is
re-exported here; offer/answer lives in `sdp_negotiation`.
"""

from __future__ import annotations

import base64
import binascii
import re

from realtime_voice.sip.sdp_model import (
    MAX_SDP_BYTES,
    MAX_SDP_LINES,
    MAX_SDP_MEDIA,
    Attribute,
    Connection,
    Crypto,
    CryptoKey,
    Direction,
    Fmtp,
    Media,
    Origin,
    RtcpAddress,
    RtpMap,
    SdpError,
    SessionDescription,
)

__all__ = [
    "MAX_SDP_BYTES", "MAX_SDP_LINES", "MAX_SDP_MEDIA", "Attribute", "Connection", "Crypto",
    "CryptoKey", "Direction", "Fmtp", "Media", "Origin", "RtcpAddress", "RtpMap", "SdpError",
    "SessionDescription", "parse", "serialize",
]

# Master key||salt sizes (bytes) of the suites we may meet (RFC 4568 §6.2, RFC 7714 §12).
# A key of another length in one of these is a broken offer, not something to negotiate.
_KEY_SIZES = {
    "AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30, "F8_128_HMAC_SHA1_80": 30,
    "AES_192_CM_HMAC_SHA1_80": 38, "AES_192_CM_HMAC_SHA1_32": 38,
    "AES_256_CM_HMAC_SHA1_80": 46, "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28, "AEAD_AES_256_GCM": 44,
}
# ASCII only: int() would also take "٣", "+1" or "1_0", which no SDP number may be.
_DIGITS = re.compile(r"[0-9]{1,20}")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 8866 token
_SUITE = re.compile(r"[A-Za-z0-9_]{1,64}")
_LIFETIME = re.compile(r"(?:2\^)?[0-9]{1,20}")
_MKI = re.compile(r"[0-9]{1,20}:[0-9]{1,3}")
_PTIME = re.compile(r"([0-9]{1,6})(?:\.[0-9]{1,6})?")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


_FLAGS = {d.value: d for d in Direction}


def parse(data: bytes | str) -> SessionDescription:
    """Parse an SDP body.

    Args:
        data: the body, UTF-8 bytes or text, with CRLF or LF line endings.

    Returns:
        The session description.

    Raises:
        SdpError: the body is too large, not UTF-8, or malformed; the message says where.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not text any peer could send
            raise SdpError("SDP is not valid UTF-8 text") from None
    else:
        raw = bytes(data)
    if len(raw) > MAX_SDP_BYTES:
        raise SdpError(f"SDP body of {len(raw)} bytes is over the {MAX_SDP_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not valid UTF-8 text") from None
    lines = text.split("\n")
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"SDP has {len(lines)} lines, over the {MAX_SDP_LINES}-line limit")
    return _Parser().run(lines)


class _Section:
    """What one section (the session, or an ``m=``) has gathered so far."""

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.direction: Direction | None = None
        self.attributes: list[Attribute] = []
        self.other: list[tuple[str, str]] = []
        self.rtpmaps: dict[int, RtpMap] = {}
        self.fmtps: dict[int, Fmtp] = {}
        self.crypto: dict[int, Crypto] = {}
        self.ptime: int | None = None
        self.maxptime: int | None = None
        self.rtcp: RtcpAddress | None = None
        self.rtcp_mux = False


class _Parser:
    def __init__(self) -> None:
        self.where = ""
        self.origin: Origin | None = None
        self.name: str | None = None
        self.times: list[tuple[int, int]] = []
        self.session = _Section()
        self.media: list[tuple[Media, _Section]] = []

    def fail(self, problem: str) -> SdpError:
        return SdpError(f"{self.where}: {problem}")

    def run(self, lines: list[str]) -> SessionDescription:
        seen_version = False
        for number, line in enumerate(lines, 1):
            if line.endswith("\r"):
                line = line[:-1]
            if not line.strip():
                continue  # blank lines (a trailing CRLF, a stray LF) carry nothing
            self.where = f"line {number}"
            if "\r" in line or "\x00" in line:
                raise self.fail("stray CR or NUL inside a line")
            if len(line) < 2 or line[1] != "=" or not line[0].isascii() or not line[0].isalpha():
                raise self.fail(f"not a <type>=<value> line: {line[:40]!r}")
            kind, value = line[0], line[2:]
            self.where = f"{kind}= line {number}"
            if not seen_version:
                if kind != "v" or value.strip() != "0":
                    raise self.fail("SDP must begin with v=0")
                seen_version = True
                continue
            self.line(kind, value)
        self.where = "SDP"
        if not seen_version:
            raise self.fail("empty body: no v=0 line")
        if self.origin is None:
            raise self.fail("no o= line")
        return self.build(self.origin)

    def line(self, kind: str, value: str) -> None:
        section = self.media[-1][1] if self.media else self.session
        if kind == "m":
            if len(self.media) >= MAX_SDP_MEDIA:
                raise self.fail(f"more than {MAX_SDP_MEDIA} m= sections")
            self.media.append((self.m_line(value), _Section()))
        elif kind == "a":
            self.attribute(section, value)
        elif kind == "c":
            if section.connection is not None:
                raise self.fail("a second c= line in one section")
            section.connection = self.connection(value.split())
        elif kind == "v":
            raise self.fail("a second v= line")
        elif kind in "ost" and self.media:
            raise self.fail("session-level line after the first m= line")
        elif kind == "o":
            if self.origin is not None:
                raise self.fail("a second o= line")
            self.origin = self.o_line(value.split())
        elif kind == "s":
            if self.name is not None:
                raise self.fail("a second s= line")
            self.name = value  # free text, kept exactly
        elif kind == "t":
            parts = value.split()
            if len(parts) != 2:
                raise self.fail(f"expected '<start> <stop>', got {value[:40]!r}")
            self.times.append((self.number(parts[0], "start"), self.number(parts[1], "stop")))
        else:
            section.other.append((kind, value))  # b=, i=, k=, r=, z=...: kept, not used

    def number(self, text: str, what: str, low: int = 0, high: int | None = None) -> int:
        if not _DIGITS.fullmatch(text):
            raise self.fail(f"{what} {text[:24]!r} is not a number")
        value = int(text)
        if value < low or (high is not None and value > high):
            raise self.fail(f"{what} {value} is out of range")
        return value

    def o_line(self, parts: list[str]) -> Origin:
        if len(parts) != 6:
            raise self.fail("expected '<user> <id> <version> <nettype> <addrtype> <address>'")
        return Origin(
            username=parts[0],
            session_id=self.number(parts[1], "session id"),
            session_version=self.number(parts[2], "session version"),
            net_type=parts[3],
            address_type=parts[4],
            address=parts[5],
        )

    def connection(self, parts: list[str]) -> Connection:
        if len(parts) != 3:
            raise self.fail("expected '<nettype> <addrtype> <address>'")
        return Connection(net_type=parts[0], address_type=parts[1], address=parts[2])

    def m_line(self, value: str) -> Media:
        parts = value.split()
        if len(parts) < 4:
            raise self.fail("expected '<media> <port> <proto> <format> ...'")
        media, port_text, proto, formats = parts[0], parts[1], parts[2], tuple(parts[3:])
        if not _TOKEN.fullmatch(media) or not _TOKEN.fullmatch(proto.replace("/", "")):
            raise self.fail(f"bad media or profile name in {value[:40]!r}")
        port_text, slash, count_text = port_text.partition("/")
        port = self.number(port_text, "port", 0, 65535)
        count = self.number(count_text, "port count", 1, 65535) if slash else None
        result = Media(media=media, port=port, proto=proto, formats=formats, port_count=count)
        if result.is_rtp:
            for fmt in formats:
                self.number(fmt, "payload type", 0, 127)
        return result

    def payload_type(self, text: str) -> int:
        return self.number(text, "payload type", 0, 127)

    def attribute(self, section: _Section, value: str) -> None:
        name, colon, rest = value.partition(":")
        if not _TOKEN.fullmatch(name):
            raise self.fail(f"bad attribute name {name[:24]!r}")
        self.where = f"a={name} {self.where.partition(' ')[2]}"
        if name in _FLAGS:
            if colon:
                raise self.fail("this attribute takes no value")
            if section.direction is not None:
                raise self.fail("a second direction attribute in one section")
            section.direction = _FLAGS[name]
        elif section is self.session or name not in (*_MEDIA_ATTRIBUTES, "rtcp-mux"):
            # Unmodelled, or a media attribute at session level (RFC 8866 puts them in m=).
            section.attributes.append(Attribute(name, rest if colon else None))
        elif name == "rtcp-mux":
            if colon:
                raise self.fail("this attribute takes no value")
            section.rtcp_mux = True
        elif not colon:
            raise self.fail("a value is required")
        else:
            _MEDIA_ATTRIBUTES[name](self, section, rest)

    def rtpmap(self, section: _Section, rest: str) -> None:
        parts = rest.split()
        if len(parts) != 2:
            raise self.fail("expected '<pt> <encoding>/<clock rate>[/<channels>]'")
        pt = self.payload_type(parts[0])
        pieces = parts[1].split("/")
        if len(pieces) not in (2, 3) or not _TOKEN.fullmatch(pieces[0]):
            raise self.fail(f"bad encoding {parts[1][:40]!r}")
        clock = self.number(pieces[1], "clock rate", 1, 10_000_000)
        channels = self.number(pieces[2], "channels", 1, 255) if len(pieces) == 3 else None
        if pt in section.rtpmaps:
            raise self.fail(f"a second rtpmap for payload type {pt}")
        section.rtpmaps[pt] = RtpMap(pt, pieces[0], clock, channels)

    def fmtp(self, section: _Section, rest: str) -> None:
        parts = rest.split(None, 1)
        if not parts:
            raise self.fail("expected '<pt> <parameters>'")
        pt = self.payload_type(parts[0])
        if pt in section.fmtps:
            raise self.fail(f"a second fmtp for payload type {pt}")
        section.fmtps[pt] = Fmtp(pt, parts[1].strip() if len(parts) == 2 else "")

    def ptime(self, section: _Section, rest: str, name: str = "ptime") -> None:
        match = _PTIME.fullmatch(rest.strip())
        # Fractional values exist in the wild ("20.0"); whole milliseconds are what we use.
        value = int(match.group(1)) if match else 0
        if not 1 <= value <= 10_000:
            raise self.fail(f"bad packet time {rest[:24]!r}")
        if getattr(section, name) is not None:
            raise self.fail("a second one in one section")
        setattr(section, name, value)

    def maxptime(self, section: _Section, rest: str) -> None:
        self.ptime(section, rest, "maxptime")

    def rtcp(self, section: _Section, rest: str) -> None:
        parts = rest.split()
        if len(parts) not in (1, 4):
            raise self.fail("expected '<port> [<nettype> <addrtype> <address>]'")
        if section.rtcp is not None:
            raise self.fail("a second one in one section")
        port = self.number(parts[0], "port", 0, 65535)
        section.rtcp = RtcpAddress(port, self.connection(parts[1:]) if len(parts) == 4 else None)

    def crypto(self, section: _Section, rest: str) -> None:
        parts = rest.split()
        if len(parts) < 3:
            raise self.fail("expected '<tag> <suite> inline:<key>[|...] [<session params>]'")
        tag = self.number(parts[0], "tag", 0, 999_999_999)
        suite = parts[1]
        if not _SUITE.fullmatch(suite):
            raise self.fail(f"bad crypto suite {suite[:40]!r}")
        keys = tuple(self.crypto_key(suite, key) for key in parts[2].split(";"))
        if tag in section.crypto:
            raise self.fail(f"a second crypto line with tag {tag}")
        section.crypto[tag] = Crypto(tag, suite, keys, tuple(parts[3:]))

    def crypto_key(self, suite: str, text: str) -> CryptoKey:
        method, _, params = text.partition(":")
        if method != "inline":
            raise self.fail(f"key method {method[:24]!r} is not 'inline'")
        encoded, *extras = params.split("|")
        if len(extras) > 2:
            raise self.fail("too many '|' fields in the key")
        mki = extras.pop() if extras and ":" in extras[-1] else None
        lifetime = extras.pop() if extras else None
        if extras:
            raise self.fail("key fields must be '|<lifetime>|<mki>:<length>'")
        if mki is not None and not _MKI.fullmatch(mki):
            raise self.fail(f"bad MKI {mki[:24]!r}")
        if lifetime is not None and not _LIFETIME.fullmatch(lifetime):
            raise self.fail(f"bad key lifetime {lifetime[:24]!r}")
        key = self.base64(encoded)
        expected = _KEY_SIZES.get(suite)
        if expected is not None and len(key) != expected:
            raise self.fail(f"{suite} needs a {expected}-byte key and salt, got {len(key)}")
        return CryptoKey(key, lifetime, mki)

    def base64(self, encoded: str) -> bytes:
        # Some stacks drop the padding ("==") that 28- and 44-byte GCM keys need: restore it.
        padded = encoded + "=" * (-len(encoded) % 4)
        if not encoded or not _B64.fullmatch(padded):
            raise self.fail(f"key {encoded[:12]!r}... is not base64")
        try:
            return base64.b64decode(padded, validate=True)
        except binascii.Error:
            raise self.fail(f"key {encoded[:12]!r}... is not base64") from None

    def build(self, origin: Origin) -> SessionDescription:
        media = []
        for index, (head, section) in enumerate(self.media, 1):
            if head.port != 0 and (section.connection or self.session.connection) is None:
                # RFC 8866 §5.7: a c= in each section or one at session level.
                raise SdpError(f"no c= line for m= section {index} ({head.media}) or the session")
            media.append(Media(
                media=head.media, port=head.port, proto=head.proto, formats=head.formats,
                port_count=head.port_count, connection=section.connection,
                rtpmaps=tuple(section.rtpmaps.values()), fmtps=tuple(section.fmtps.values()),
                ptime=section.ptime, maxptime=section.maxptime, direction=section.direction,
                crypto=tuple(section.crypto.values()), rtcp=section.rtcp,
                rtcp_mux=section.rtcp_mux, attributes=tuple(section.attributes),
                other_lines=tuple(section.other),
            ))
        return SessionDescription(
            origin=origin,
            name="-" if self.name is None else self.name,
            connection=self.session.connection,
            times=tuple(self.times) or ((0, 0),),  # t= is mandatory, but nothing needs it
            direction=self.session.direction,
            attributes=tuple(self.session.attributes),
            other_lines=tuple(self.session.other),
            media=tuple(media),
        )


_MEDIA_ATTRIBUTES = {
    "rtpmap": _Parser.rtpmap,
    "fmtp": _Parser.fmtp,
    "ptime": _Parser.ptime,
    "maxptime": _Parser.maxptime,
    "rtcp": _Parser.rtcp,
    "crypto": _Parser.crypto,
}


def serialize(sdp: SessionDescription) -> str:
    """Write ``sdp`` as an SDP body with CRLF line endings, in RFC 8866 line order.

    Unmodelled lines go back where the RFC orders their type; unknown attributes follow
    the modelled ones. ``parse(serialize(sdp)) == sdp`` for any parsed ``sdp``.

    Args:
        sdp: the description.

    Returns:
        The body as text; encode it as UTF-8 for the SIP message.
    """
    o = sdp.origin
    lines = [
        "v=0",
        f"o={o.username} {o.session_id} {o.session_version} {o.net_type} {o.address_type} "
        f"{o.address}",
        f"s={sdp.name}",
    ]
    lines += [f"{k}={v}" for k, v in sdp.other_lines if k in "iuep"]
    lines += _connection("c=", sdp.connection)
    lines += [f"{k}={v}" for k, v in sdp.other_lines if k == "b"]
    lines += [f"t={start} {stop}" for start, stop in sdp.times]
    lines += [f"{k}={v}" for k, v in sdp.other_lines if k not in "iuepb"]
    if sdp.direction is not None:
        lines.append(f"a={sdp.direction}")
    lines += _attributes(sdp.attributes)
    for media in sdp.media:
        lines += _media_lines(media)
    return "\r\n".join(lines) + "\r\n"


def _connection(prefix: str, conn: Connection | None) -> list[str]:
    if conn is None:
        return []
    return [f"{prefix}{conn.net_type} {conn.address_type} {conn.address}"]


def _attributes(attributes: tuple[Attribute, ...]) -> list[str]:
    return [f"a={a.name}" if a.value is None else f"a={a.name}:{a.value}" for a in attributes]


def _media_lines(m: Media) -> list[str]:
    port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
    lines = [f"m={m.media} {port} {m.proto} {' '.join(m.formats)}"]
    lines += [f"{k}={v}" for k, v in m.other_lines if k == "i"]
    lines += _connection("c=", m.connection)
    lines += [f"{k}={v}" for k, v in m.other_lines if k != "i"]
    for r in m.rtpmaps:
        channels = f"/{r.channels}" if r.channels is not None else ""
        lines.append(f"a=rtpmap:{r.payload_type} {r.encoding}/{r.clock_rate}{channels}")
    for f in m.fmtps:
        lines.append(f"a=fmtp:{f.payload_type} {f.parameters}".rstrip())
    if m.ptime is not None:
        lines.append(f"a=ptime:{m.ptime}")
    if m.maxptime is not None:
        lines.append(f"a=maxptime:{m.maxptime}")
    if m.direction is not None:
        lines.append(f"a={m.direction}")
    for c in m.crypto:
        keys = ";".join(_inline_key(k) for k in c.keys)
        lines.append(" ".join([f"a=crypto:{c.tag} {c.suite} {keys}", *c.session_params]))
    if m.rtcp is not None:
        lines += _connection(f"a=rtcp:{m.rtcp.port} ", m.rtcp.connection) or [
            f"a=rtcp:{m.rtcp.port}"
        ]
    if m.rtcp_mux:
        lines.append("a=rtcp-mux")
    return lines + _attributes(m.attributes)


def _inline_key(key: CryptoKey) -> str:
    extras = [x for x in (key.lifetime, key.mki) if x is not None]
    return "|".join([f"inline:{base64.b64encode(key.key_salt).decode('ascii')}", *extras])
