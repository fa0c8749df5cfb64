"""SIP lexical rules, URIs, name-addr values and Via (RFC 3261 §19.1, §20, §25, RFC 5626).

Sans-I/O and stdlib only. This is the bottom of the SIP message layer:

- `SipParseError`, the one exception the layer raises for anything a peer sends;
- the lexical helpers (`split_outside`, `unquote`, `parse_params`) that header parsing
  and digest authentication share;
- the value types with their parsers: `SipUri`/`OtherUri` (`parse_uri`), `NameAddr`
  (`parse_name_addr`: From, To, Contact, Route...), `Via` (`parse_via`), `CSeq`.

Each parser takes one element of a header (already unfolded and, for list headers,
split by `realtime_voice.sip.headers.Headers.values`) and raises only `SipParseError`,
whose message names the problem. Every value object serializes back with ``str()``.

Escapes (``%41``) are kept as received in users, hosts and parameters: RFC 3261 §19.1.4
compares URIs after unescaping, but forwarding one must not change it. Parameter names
are lower-cased (they are case-insensitive); values keep their case and quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the message model sits above this module; only its type is needed
    from realtime_voice.sip.headers import SipMessage

__all__ = [
    "CSeq", "NameAddr", "OtherUri", "SipParseError", "SipUri", "Uri", "Via", "format_params",
    "is_token", "parse_cseq", "parse_name_addr", "parse_params", "parse_uri", "parse_via",
    "quote", "quoted_end", "split_outside", "unquote",
]

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # RFC 3261 §25.1 token
# A parameter value that is not a quoted string: token characters plus what IPv6
# references and URI parameters (``maddr=[::1]``, ``%41``, ``/``) may hold. Anything that
# would end the parameter, a list element or a URI (``;,?<>"`` and whitespace) is out.
_PARAM_VALUE = re.compile(r"[^\s;,?<>\"]+")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+")  # IPv6 reference, name, IPv4
_PORT = re.compile(r"[0-9]{1,5}")
# Characters no URI may hold unescaped; a space inside <...> is the classic (RFC 4475
# §3.1.2.14 badaspec), a '"' or '<' means a broken quote or bracket around it.
_NOT_IN_URI = re.compile(r"[\s<>\"]")
_VIA = re.compile(
    r"([^\s/]+)[ \t]*/[ \t]*([^\s/]+)[ \t]*/[ \t]*([^\s/;]+)[ \t]+([^;]+?)[ \t]*(?:;(.*))?",
    re.DOTALL,
)
_SENT_BY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?")
_CSEQ = re.compile(r"([0-9]{1,10})[ \t]+(\S+)")
_MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: the number MUST be less than 2**31


class SipParseError(ValueError):
    """A SIP message (or part of one) we cannot parse or will not accept.

    The message names the problem (``"CSeq method 'INVITE' does not match OPTIONS"``).
    It is the only exception the message layer raises for anything a peer sends.

    Attributes:
        reason: the problem, as in ``str(error)``; short enough for a reason phrase.
        partial: what could be read of the message (start line and header fields), or
            None. `realtime_voice.sip.message.bad_request_response` uses it to answer a
            broken request; a transport that gets None drops the bytes.
        status: the response code that fits (400; 505 for an unknown SIP version; 513
            for a message over our size limits).
    """

    def __init__(
        self, reason: str, *, partial: SipMessage | None = None, status: int = 400,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.status = status


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 3261 token (a method, header name, parameter name...)."""
    return _TOKEN.fullmatch(text) is not None


def quoted_end(text: str, start: int = 0) -> int:
    """Index just past the quoted string that opens at ``text[start]``.

    Raises:
        SipParseError: the quoted string is never closed.
    """
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # a quoted-pair: the next character is literal, even a '"'
            continue
        if char == '"':
            return i + 1
        i += 1
    raise SipParseError(f"unterminated quoted string: {_clip(text[start:])}")


def split_outside(text: str, separator: str) -> list[str]:
    """Split ``text`` at ``separator`` where it is outside quoted strings and ``<...>``.

    A comma inside ``"Doe, John"`` or inside ``<sip:a@b;x=1,2>`` separates nothing. The
    pieces come back unstripped; ``separator`` is one character (``","``, ``";"``).

    Raises:
        SipParseError: a quoted string or a ``<`` is never closed.
    """
    pieces: list[str] = []
    start = i = 0
    in_angle = False
    while i < len(text):
        char = text[i]
        # Inside <...> a '"' is a (bad) URI character, not the start of a quoted string.
        if char == '"' and not in_angle:
            i = quoted_end(text, i)
            continue
        if char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == separator and not in_angle:
            pieces.append(text[start:i])
            start = i + 1
        i += 1
    if in_angle:
        raise SipParseError(f"unclosed '<' in {_clip(text)}")
    pieces.append(text[start:])
    return pieces


def unquote(text: str) -> str:
    """The content of the quoted string ``text`` (quotes included), quoted-pairs resolved.

    Raises:
        SipParseError: ``text`` is not exactly one quoted string.
    """
    if not text.startswith('"') or quoted_end(text, 0) != len(text):
        raise SipParseError(f"not a quoted string: {_clip(text)}")
    return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)


def quote(text: str) -> str:
    """``text`` as a quoted string, escaping backslashes and double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str, where: str) -> dict[str, str | None]:
    """Parse ``;``-separated ``name[=value]`` parameters (``"tag=1; lr;q=0.5"``).

    Names are case-insensitive in SIP, so they come back in lower case; values keep the
    peer's spelling, quotes included (``+sip.instance`` stays ``'"<urn:uuid:...>"'``),
    so what we re-serialize is what arrived. LWS around ``;`` and ``=`` is allowed.

    Args:
        text: the parameters after the first ``;`` (``""`` for none).
        where: what they belong to, for the error message (``"Via"``, ``"To"``).

    Returns:
        Name → value, or None for a valueless parameter (``lr``, ``rport``), in order.

    Raises:
        SipParseError: an empty parameter (``;;``), a name that is not a token or given
            twice, or a value with spaces or separators in it.
    """
    params: dict[str, str | None] = {}
    if not text.strip():
        raise SipParseError(f"empty parameter in {where}")
    for piece in split_outside(text, ";"):
        name, eq, value = piece.partition("=")
        name = name.strip(" \t")
        if not name:
            raise SipParseError(f"empty parameter in {where}")
        if not is_token(name):
            raise SipParseError(f"bad parameter name {_clip(name)!r} in {where}")
        if name.lower() in params:  # two tags or branches: which one would a peer use?
            raise SipParseError(f"parameter {_clip(name)} given twice in {where}")
        if eq:
            value = value.strip(" \t")
            quoted = value.startswith('"') and quoted_end(value, 0) == len(value)
            if not quoted and _PARAM_VALUE.fullmatch(value) is None:
                raise SipParseError(f"bad value {_clip(value)!r} for parameter {name} in {where}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    """``";name=value;flag"`` for ``params`` (``""`` for none): the inverse of `parse_params`."""
    return "".join(f";{name}" if value is None else f";{name}={value}"
                   for name, value in params.items())


def _clip(text: str, limit: int = 60) -> str:
    """``text`` shortened for an error message: a reason phrase stays one short line."""
    return text if len(text) <= limit else text[:limit] + "..."


def _port(text: str, where: str) -> int:
    if _PORT.fullmatch(text) is None or not 0 < int(text) <= 65535:
        raise SipParseError(f"bad port {text[:12]!r} in {where}")
    return int(text)


@dataclass
class SipUri:
    """A ``sip:`` or ``sips:`` URI.

    Attributes:
        host: host name, IPv4 address or IPv6 reference with its brackets (``"[::1]"``).
        user: the user part (escapes kept), or None.
        password: the password after ``user:``, or None (deprecated, but legal).
        port: the port, or None when absent.
        params: URI parameters (``transport``, ``lr``, ``ob``...), lower-case names.
        headers: URI headers after ``?`` (``Route=%3C...%3E``), raw.
        scheme: ``"sip"`` or ``"sips"``, lower case.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    scheme: str = "sip"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in lower case (``"tls"``), or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        """Whether the URI carries ``lr`` (a loose router, RFC 3261 §16.12)."""
        return "lr" in self.params

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + ("" if self.password is None else ":" + self.password) + "@"
        port = "" if self.port is None else f":{self.port}"
        headers = "&".join(f"{name}={value}" for name, value in self.headers.items())
        return (f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}"
                + (f"?{headers}" if headers else ""))


@dataclass
class OtherUri:
    """A URI of another scheme (``tel:``, ``http:``, ``urn:``...), kept opaque.

    Attributes:
        scheme: the scheme as received.
        rest: everything after the first ``:``.
    """

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | OtherUri
"""Any URI a SIP message may carry."""


def parse_uri(text: str) -> Uri:
    """Parse one URI: a `SipUri` for ``sip:``/``sips:``, an `OtherUri` for any other scheme.

    Args:
        text: the URI alone, no surrounding ``<>`` or whitespace.

    Returns:
        The parsed URI.

    Raises:
        SipParseError: no scheme, whitespace or ``<>"`` in it, or a malformed SIP URI.
    """
    if _NOT_IN_URI.search(text):
        raise SipParseError(f"URI {text[:60]!r} holds whitespace or one of <>\"")
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME.fullmatch(scheme) is None or not rest:
        raise SipParseError(f"URI {text[:60]!r} has no scheme")
    if scheme.lower() not in ("sip", "sips"):
        return OtherUri(scheme, rest)
    uri = SipUri(host="", scheme=scheme.lower())
    # The user part may hold ';', '?', ',' and ':' (RFC 4475 §3.1.1.2 intmeth and
    # §3.1.1.10 semiuri); nothing after the '@' and no password may hold an '@'.
    userinfo, at, hostpart = rest.partition("@")
    if not at:
        userinfo, hostpart = "", rest
    else:
        if not userinfo:
            raise SipParseError(f"URI {text[:60]!r} has an empty user")
        user, colon, password = userinfo.partition(":")
        uri.user, uri.password = user, (password if colon else None)
    hostpart, question, headers = hostpart.partition("?")
    if question:
        for pair in headers.split("&"):
            name, eq, value = pair.partition("=")
            if not name or not eq:
                raise SipParseError(f"bad URI header {pair[:40]!r} in {text[:60]!r}")
            uri.headers[name] = value
    hostport, semicolon, params = hostpart.partition(";")
    if semicolon:
        uri.params = parse_params(params, f"URI {text[:60]!r}")
    if hostport.startswith("["):
        end = hostport.find("]") + 1 or len(hostport)  # no ']': the host check fails
        host, port = hostport[:end], hostport[end:]
    else:
        host, colon, port = hostport.partition(":")
        port = colon + port
    if _HOST.fullmatch(host) is None or (port and not port.startswith(":")):
        raise SipParseError(f"bad host {hostport[:60]!r} in URI")
    uri.host = host
    if port:
        uri.port = _port(port[1:], f"URI {text[:60]!r}")
    return uri


@dataclass
class NameAddr:
    """A name-addr or addr-spec header value: From, To, Contact, Route, Refer-To...

    Attributes:
        uri: the address.
        display_name: the display name, unquoted and unescaped, or None.
        params: header parameters after the URI (``tag``, ``expires``, ``q``,
            ``+sip.instance``, ``reg-id``...), lower-case names, values as received.
    """

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To), or None."""
        return self.params.get("tag")

    def __str__(self) -> str:
        # Always the <...> form: a URI with ';' or '?' in it would otherwise lend its
        # parameters to the header (RFC 3261 §20).
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str, where: str) -> NameAddr:
    """Parse ``["Display" | display tokens] <uri> *(;param)`` or ``uri *(;param)``.

    Args:
        text: one element of the header (one Contact of a list).
        where: the header name, for error messages.

    Returns:
        The value; without ``<>``, the parameters after the URI are header parameters
        and the URI must not contain ``;``, ``?`` or ``,`` (RFC 3261 §20).

    Raises:
        SipParseError: an unbalanced quote or bracket, an unquoted display name that is
            not tokens (``Bell, Alexander``), whitespace inside ``<>``, or a bad URI.
    """
    text = text.strip(" \t")
    display: str | None = None
    if text.startswith('"'):
        end = quoted_end(text)
        display, rest = unquote(text[:end]), text[end:].lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError(f"{where}: a quoted display name must be followed by <URI>")
    else:
        lt = text.find("<")
        if lt < 0:
            return _addr_spec(text, where)
        words = text[:lt].split()
        if not all(is_token(word) for word in words):
            raise SipParseError(f"{where}: display name {text[:lt].strip()[:40]!r} must be quoted")
        display, rest = (" ".join(words) or None), text[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(f"{where}: '<' without '>'")
    uri = parse_uri(rest[1:gt])
    after = rest[gt + 1:].strip(" \t")
    if after and not after.startswith(";"):
        raise SipParseError(f"{where}: unexpected {after[:30]!r} after the URI")
    params = parse_params(after[1:], where) if after else {}
    return NameAddr(uri, display, params)


def _addr_spec(text: str, where: str) -> NameAddr:
    uri_text, semicolon, params = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise SipParseError(f"{where}: a URI with '?' or ',' must be enclosed in <>")
    uri = parse_uri(uri_text.strip(" \t"))
    return NameAddr(uri, None, parse_params(params, where) if semicolon else {})


@dataclass
class Via:
    """One Via header element (RFC 3261 §20.42, RFC 3581 rport, RFC 5923 alias).

    Attributes:
        transport: the transport in upper case (``"UDP"``, ``"TCP"``, ``"TLS"``, ``"WSS"``).
        host: the sent-by host (an IPv6 reference keeps its brackets).
        port: the sent-by port, or None.
        params: ``branch``, ``received``, ``rport``, ``alias``... lower-case names.
        protocol: ``"SIP/2.0"`` as received (name/version), without the transport.
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        """The ``branch`` (transaction id; ``z9hG4bK``-prefixed from RFC 3261 peers), or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address a server added, or None."""
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        """Whether ``rport`` is present at all (valueless in a request, RFC 3581)."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The ``rport`` value a server filled in, or None (absent or valueless)."""
        value = self.params.get("rport")
        return int(value) if value else None

    @property
    def alias(self) -> bool:
        """Whether ``alias`` asks the server to reuse this connection (RFC 5923)."""
        return "alias" in self.params

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"


def parse_via(text: str) -> Via:
    """Parse one Via element (``SIP/2.0/TLS 10.0.0.2:5061;rport;branch=z9hG4bK...``).

    LWS around the slashes, before ``;`` and around ``=`` is allowed (RFC 4475 wsinv).

    Raises:
        SipParseError: not ``protocol/version/transport sent-by``, a bad host or port,
            or a bad parameter (``rport`` or ``ttl`` not a number, an empty ``;;``).
    """
    match = _VIA.fullmatch(text.strip(" \t"))
    if match is None:
        raise SipParseError(f"bad Via {text[:60]!r}")
    name, version, transport, sent_by, params = match.groups()
    host_match = _SENT_BY.fullmatch(sent_by)
    if not is_token(name) or not is_token(version) or not is_token(transport) or not host_match:
        raise SipParseError(f"bad Via {text[:60]!r}")
    host, port = host_match.groups()
    via = Via(transport.upper(), host, None if port is None else _port(port, "Via"),
              protocol=f"{name}/{version}")
    if params is not None:
        via.params = parse_params(params, "Via")
    for numeric in ("rport", "ttl"):
        value = via.params.get(numeric)
        if value is not None and _PORT.fullmatch(value) is None:
            raise SipParseError(f"Via {numeric}={value[:12]!r} is not a number")
    if via.params.get("branch") == "":
        raise SipParseError("Via has an empty branch")
    return via


@dataclass(frozen=True)
class CSeq:
    """The CSeq header: sequence number and method (RFC 3261 §20.16).

    Attributes:
        number: the sequence number, below 2**31.
        method: the method, case-sensitive.
    """

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(text: str) -> CSeq:
    """Parse ``"<number> <METHOD>"`` (LWS between; leading zeros allowed).

    Raises:
        SipParseError: not that shape, the method not a token, or the number 2**31 or more.
    """
    match = _CSEQ.fullmatch(text.strip(" \t"))
    if match is None or not is_token(match.group(2)):
        raise SipParseError(f"bad CSeq {text[:40]!r}")
    number = int(match.group(1))
    if number > _MAX_CSEQ:
        raise SipParseError(f"CSeq number {match.group(1)} is 2**31 or more")
    return CSeq(number, match.group(2))
