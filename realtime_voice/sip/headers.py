"""SIP header fields and the message model (RFC 3261 §7, §20).

Sans-I/O and stdlib only. `Headers` keeps every field in arrival order, looks names up
case-insensitively with the compact forms (``i``, ``v``, ``m``...) expanded, and splits
the comma-separated list headers (Via, Contact, Route, Allow...) at commas outside
quoted strings and ``<...>``. `SipRequest` and `SipResponse` hold a start line, the
headers and the body, with typed accessors (``via``, ``from_``, ``to``, ``cseq``...) and
`serialize`. Parsing and stream framing are in `realtime_voice.sip.message`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from realtime_voice.sip.uri import (
    CSeq,
    NameAddr,
    SipParseError,
    Uri,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_outside,
)

__all__ = [
    "COMPACT_FORMS", "LIST_HEADERS", "Headers", "SipMessage", "SipRequest", "SipResponse",
    "canonical_name",
]

_DIGITS = re.compile(r"[0-9]{1,10}")
_MAX_EXPIRES = 2**32 - 1  # RFC 3261 §20.19: larger values are taken as this

COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type",
    "d": "request-disposition", "e": "content-encoding", "f": "from", "i": "call-id",
    "j": "reject-contact", "k": "supported", "l": "content-length", "m": "contact",
    "n": "identity-info", "o": "event", "r": "refer-to", "s": "subject", "t": "to",
    "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}
"""One-letter compact header names (RFC 3261 §7.3.3 and the IANA SIP registry), lower case."""

# The spelling we write for the headers we know; an unknown header keeps the peer's.
_CANONICAL = {
    name.lower(): name for name in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info",
        "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
        "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
        "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info",
        "Event", "Expires", "From", "Identity", "Identity-Info", "In-Reply-To",
        "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization", "Path",
        "P-Asserted-Identity", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
        "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
        "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition", "Require",
        "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires",
        "Subject", "Subscription-State", "Supported", "Timestamp", "To", "Unsupported",
        "User-Agent", "Via", "Warning", "WWW-Authenticate",
    )
}

LIST_HEADERS = frozenset({
    "accept", "accept-contact", "accept-encoding", "accept-language", "alert-info", "allow",
    "allow-events", "call-info", "contact", "content-encoding", "content-language",
    "error-info", "in-reply-to", "p-asserted-identity", "path", "proxy-require", "reason",
    "record-route", "reject-contact", "request-disposition", "require", "route",
    "service-route", "supported", "unsupported", "via", "warning",
})
"""Headers whose value is a comma-separated list (RFC 3261 §7.3.1), lower case.

The authentication headers are deliberately absent: their commas separate parameters of
one challenge, not list elements.
"""


def canonical_name(name: str) -> str:
    """The spelling we write for header ``name``: compact forms expanded, known ones canonical.

    Args:
        name: a header name as received or as a caller spells it (``"i"``, ``"call-id"``).

    Returns:
        ``"Call-ID"`` for both examples; an unknown name comes back unchanged.
    """
    key = _key(name)
    return _CANONICAL.get(key, name if len(name) > 1 else key)


def _key(name: str) -> str:
    lower = name.lower()
    return COMPACT_FORMS.get(lower, lower)


class Headers:
    """The header fields of one SIP message, in order, with case-insensitive lookup.

    Each field is kept as one ``(name, value)`` pair as it arrived (after unfolding); a
    name is stored in its canonical spelling (``"v"`` becomes ``"Via"``). Several fields
    of one name stay separate, so serializing writes them back as they came.

    Args:
        fields: initial ``(name, value)`` pairs.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = []
        for name, value in fields:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field ``name: value`` after the existing ones.

        Raises:
            ValueError: ``value`` holds a CR or LF, which would inject header lines.
        """
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} value holds a line break")
        self._fields.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` with one ``name: value`` (at the first's place)."""
        key = _key(name)
        index = next((i for i, (n, _) in enumerate(self._fields) if _key(n) == key), None)
        self.remove(name)
        self.add(name, value)
        if index is not None:  # keep the field where the replaced one stood
            self._fields.insert(index, self._fields.pop())

    def remove(self, name: str) -> None:
        """Remove every field called ``name`` (no error when there is none)."""
        key = _key(name)
        self._fields = [(n, v) for n, v in self._fields if _key(n) != key]

    def get(self, name: str) -> str | None:
        """The value of the first field called ``name``, or None."""
        key = _key(name)
        return next((v for n, v in self._fields if _key(n) == key), None)

    def get_all(self, name: str) -> list[str]:
        """The values of every field called ``name``, one per field, unsplit."""
        key = _key(name)
        return [v for n, v in self._fields if _key(n) == key]

    def values(self, name: str) -> list[str]:
        """Every element of header ``name``: list headers split at commas, stripped.

        ``Via: a, b`` plus ``Via: c`` gives ``["a", "b", "c"]``; empty elements
        (``Allow: INVITE,,ACK``) are dropped. A header that is not a list header gives
        one element per field.

        Raises:
            SipParseError: a quoted string or ``<`` in a list header is never closed.
        """
        fields = self.get_all(name)
        if _key(name) not in LIST_HEADERS:
            return [v.strip(" \t") for v in fields]
        elements = (p.strip(" \t") for v in fields for p in split_outside(v, ","))
        return [element for element in elements if element]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers(self._fields)


@dataclass
class MessageBase:
    """What requests and responses share: header fields, body and typed accessors.

    Each accessor parses its header when called and raises `SipParseError` if it is
    missing (for the mandatory ones) or malformed; a message that came out of the
    parsers has already passed Via, From, To, Call-ID, CSeq, Max-Forwards and Contact.
    """

    # Keyword-only, so each subclass's start-line fields come first positionally.
    headers: Headers = field(default_factory=Headers, kw_only=True)
    body: bytes = field(default=b"", kw_only=True)

    def start_line(self) -> str:
        """The request or status line, without CRLF."""
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The message on the wire, with ``Content-Length`` computed from the body."""
        lines = [self.start_line()]
        lines += [f"{name}: {value}" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        # surrogateescape writes back any non-UTF-8 byte a peer sent us, unchanged.
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body

    def _single(self, name: str) -> str:
        values = self.headers.get_all(name)
        if not values:
            raise SipParseError(f"missing {name} header")
        if len(values) > 1:
            raise SipParseError(f"more than one {name} header")
        return values[0]

    @property
    def via(self) -> list[Via]:
        """Every Via element, topmost first (there must be at least one)."""
        vias = [parse_via(value) for value in self.headers.values("Via")]
        if not vias:
            raise SipParseError("missing Via header")
        return vias

    @property
    def from_(self) -> NameAddr:
        """The From header."""
        return parse_name_addr(self._single("From"), "From")

    @property
    def to(self) -> NameAddr:
        """The To header."""
        return parse_name_addr(self._single("To"), "To")

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        call_id = self._single("Call-ID").strip(" \t")
        if not call_id or any(char.isspace() for char in call_id):
            raise SipParseError(f"bad Call-ID {call_id[:40]!r}")
        return call_id

    @property
    def cseq(self) -> CSeq:
        """The CSeq header."""
        return parse_cseq(self._single("CSeq"))

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact element; empty when there is none or for the ``*`` wildcard."""
        values = self.headers.values("Contact")
        if values == ["*"]:  # REGISTER's remove-all-bindings (RFC 3261 §10.2.2)
            return []
        return [parse_name_addr(value, "Contact") for value in values]

    @property
    def is_contact_wildcard(self) -> bool:
        """Whether the Contact is ``*`` (REGISTER removing every binding)."""
        return self.headers.values("Contact") == ["*"]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255), or None when absent."""
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        if _DIGITS.fullmatch(value) is None or int(value) > 255:
            raise SipParseError(f"bad Max-Forwards {value[:20]!r}")
        return int(value)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (huge values capped at 2**32-1), or None."""
        value = self.headers.get("Expires")
        if value is None:
            return None
        if not value.isascii() or not value.isdigit():
            raise SipParseError(f"bad Expires {value[:20]!r}")
        return min(int(value), _MAX_EXPIRES)


@dataclass(eq=True)
class SipRequest(MessageBase):
    """A SIP request.

    Attributes:
        method: the method, case-sensitive (``"INVITE"``).
        uri: the Request-URI.
        headers: the header fields, in order.
        body: the body (its length is the Content-Length written).
    """

    method: str
    uri: Uri

    def start_line(self) -> str:
        """``METHOD Request-URI SIP/2.0``."""
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(eq=True)
class SipResponse(MessageBase):
    """A SIP response.

    Attributes:
        status: the status code (100-699).
        reason: the reason phrase (may be empty).
        headers: the header fields, in order.
        body: the body.
    """

    status: int
    reason: str

    def start_line(self) -> str:
        """``SIP/2.0 code reason``."""
        return f"SIP/2.0 {self.status} {self.reason}"


SipMessage = SipRequest | SipResponse
"""A request or a response."""
