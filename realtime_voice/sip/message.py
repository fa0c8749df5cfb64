"""SIP messages (RFC 3261 §7): the model, parsing, stream framing, and the replies a UA needs.

Sans-I/O and stdlib only. A transport hands bytes in and gets messages out:

- UDP: `parse_datagram` on each datagram (one message; Content-Length optional);
- TCP/TLS: one `SipStreamParser` per connection; `feed` returns `StreamEvent`s:
  messages framed by their (mandatory) Content-Length, RFC 5626 keep-alive pings and
  pongs, and `InvalidMessage` for what cannot be accepted.

Everything a peer can send ends either as a message or as a `SipParseError` whose text
names the problem: nothing else is ever raised (tests/fuzz/test_fuzz_sip.py holds the
parsers to that). When a broken request still has a readable start line and Via, From,
To, Call-ID and CSeq, `bad_request_response` builds the 400 (505, 513) that answers it;
otherwise the transport drops it. RFC 4475's torture messages are tests of this module
(tests/unit/test_sip_torture.py records what each one gives).

On parsing, ``Content-Length`` leaves the headers: it is framing, and `serialize`
always writes it from the body, so a stale value can never go out.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from realtime_voice.sip.headers import Headers, SipMessage, SipRequest, SipResponse
from realtime_voice.sip.uri import (
    OtherUri,
    SipParseError,
    SipUri,
    is_token,
    parse_name_addr,
    parse_uri,
)

__all__ = [
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "REASON_PHRASES",
    "InvalidMessage",
    "KeepAlivePing",
    "KeepAlivePong",
    "SipLimits",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipStreamParser",
    "StreamEvent",
    "bad_request_response",
    "build_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_datagram",
]

KEEPALIVE_PING = b"\r\n\r\n"
"""An RFC 5626 §4.4.1 keep-alive ping (double CRLF) on a stream."""
KEEPALIVE_PONG = b"\r\n"
"""The pong (single CRLF) that answers a ping."""

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline",
}
"""Default reason phrases (RFC 3261 §21) for `build_response`."""

RandomBytes = Callable[[int], bytes]
_STATUS = re.compile(r"[1-6][0-9]{2}")
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class SipLimits:
    """Bounds on what one peer can make us buffer or parse.

    Attributes:
        max_header_bytes: start line plus header fields plus the blank line. RingCentral's
            INVITEs are a few KB; RFC 4475's longest message is 3.5 KB.
        max_body_bytes: one body (an SDP offer is about 1 KB).
        max_headers: header fields in one message.
        max_buffered_bytes: bytes a `SipStreamParser` holds undelivered.
    """

    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 64 * 1024
    max_headers: int = 128
    max_buffered_bytes: int = 96 * 1024

    def __post_init__(self) -> None:
        if min(self.max_header_bytes, self.max_body_bytes, self.max_headers) <= 0:
            raise ValueError("SIP limits must be positive")
        if self.max_buffered_bytes < self.max_header_bytes + self.max_body_bytes:
            raise ValueError("max_buffered_bytes must hold a largest header block and body")


@dataclass(frozen=True)
class KeepAlivePing:
    """A CRLFCRLF keep-alive ping arrived: answer with `KEEPALIVE_PONG` (RFC 5626 §4.4.1)."""


@dataclass(frozen=True)
class KeepAlivePong:
    """A single-CRLF pong arrived: the flow is alive (or a stray CRLF, RFC 3261 §7.5)."""


@dataclass(frozen=True)
class InvalidMessage:
    """Bytes on a stream that make no acceptable message.

    Attributes:
        error: the problem; ``bad_request_response(error)`` is the reply, or None.
        fatal: the framing is lost (no usable Content-Length, a limit exceeded, an
            unreadable start line): reply if possible, then close the connection. When
            False the message was skipped whole and the stream continues.
    """

    error: SipParseError
    fatal: bool


StreamEvent = SipRequest | SipResponse | KeepAlivePing | KeepAlivePong | InvalidMessage
"""What `SipStreamParser.feed` returns, in arrival order."""


def _header_fields(lines: list[str]) -> tuple[list[tuple[str, str]], SipParseError | None]:
    """Unfold and split header lines; a bad line is skipped and reported, not fatal."""
    fields: list[tuple[str, str]] = []
    problem: SipParseError | None = None
    for line in lines:
        if "\r" in line or "\n" in line:
            # A bare CR or LF would let a copied value inject header lines downstream.
            problem = problem or SipParseError("bare CR or LF in the header block")
        elif line[:1] in (" ", "\t"):  # LWS continuation of the previous field (§7.3.1)
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            else:
                problem = problem or SipParseError("continuation line before the first header")
        else:
            name, colon, value = line.partition(":")
            name = name.rstrip(" \t")
            if colon and is_token(name):
                fields.append((name, value.strip(" \t")))
            else:
                problem = problem or SipParseError(f"bad header line {line[:40]!r}")
    return fields, problem


def _start_line(line: str, headers: Headers) -> tuple[SipMessage | None, SipParseError | None]:
    """The message the start line opens (partial when broken) and its problem, if any."""
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        partial = SipResponse(0, line, headers=headers)
        if version.upper() != "SIP/2.0":
            return partial, SipParseError(f"unsupported version {version[:20]!r}", status=505)
        if _STATUS.fullmatch(code) is None:
            return partial, SipParseError(f"bad status code {code[:20]!r}")
        return SipResponse(int(code), reason, headers=headers), None
    parts = line.split(" ")
    if not is_token(parts[0]):
        return None, SipParseError(f"bad start line {line[:40]!r}")
    request = SipRequest(parts[0], OtherUri("", " ".join(parts[1:])), headers=headers)
    if len(parts) != 3:
        return request, SipParseError("Request-Line needs single spaces around the Request-URI")
    try:
        request.uri = parse_uri(parts[1])
    except SipParseError as error:
        return request, SipParseError(f"bad Request-URI: {error.reason}")
    if parts[2].upper() != "SIP/2.0":
        return request, SipParseError(f"unsupported version {parts[2][:20]!r}", status=505)
    if isinstance(request.uri, SipUri) and request.uri.headers:  # RFC 3261 §19.1.5
        return request, SipParseError("Request-URI must not carry headers")
    return request, None


def _read_head(head: bytes, limits: SipLimits) -> SipMessage:
    """The message a header block (without its final CRLFCRLF) opens.

    Raises:
        SipParseError: with ``partial`` set whenever the start line could be classified.
    """
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    fields, problem = _header_fields(lines[1:])
    if len(fields) > limits.max_headers:
        problem = SipParseError(f"more than {limits.max_headers} header fields", status=513)
    message, start_problem = _start_line(lines[0], Headers(fields))
    problem = start_problem or problem
    if problem is not None:
        problem.partial = message
        raise problem
    assert message is not None  # no problem means the start line was good
    return message


def _content_length(message: SipMessage, *, required: bool) -> int | None:
    values = message.headers.get_all("Content-Length")
    if not values:
        if required:
            raise SipParseError("missing Content-Length (mandatory on a stream)", partial=message)
        return None
    if any(_DIGITS.fullmatch(value) is None for value in values):
        raise SipParseError(f"bad Content-Length {values[0][:20]!r}", partial=message)
    if len({int(value) for value in values}) > 1:
        raise SipParseError("conflicting Content-Length headers", partial=message)
    return int(values[0])


def _finish(message: SipMessage, body: bytes) -> SipMessage:
    """Attach the body and check the headers every transaction relies on."""
    message.body = body
    message.headers.remove("Content-Length")
    try:
        message.via  # noqa: B018 - each accessor parses and raises on a malformed header
        message.from_  # noqa: B018
        message.to  # noqa: B018
        message.call_id  # noqa: B018
        cseq = message.cseq
        message.max_forwards  # noqa: B018
        message.contacts  # noqa: B018
    except SipParseError as error:
        raise SipParseError(error.reason, partial=message, status=error.status) from None
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError(f"CSeq method {cseq.method[:30]!r} does not match the request",
                            partial=message)
    return message


def parse_datagram(data: bytes, limits: SipLimits | None = None) -> SipMessage | None:
    """Parse one UDP datagram as one SIP message (RFC 3261 §18.3).

    Content-Length is optional here (absent: the body is the rest of the datagram);
    bytes past it are discarded, and one past the end of the datagram is an error.

    Args:
        data: the datagram.
        limits: size limits; defaults to `SipLimits()`.

    Returns:
        The message, or None for a datagram of nothing but CRLFs and spaces (a keep-alive).

    Raises:
        SipParseError: anything malformed; ``bad_request_response(error)`` is the reply.
    """
    limits = limits or SipLimits()
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: CRLFs before the start line are ignored
    if not data.strip(b" \t\r\n"):
        return None
    end = data.find(b"\r\n\r\n", 0, limits.max_header_bytes)
    if end < 0:
        if len(data) >= limits.max_header_bytes:
            raise SipParseError(f"header block over {limits.max_header_bytes} bytes", status=513)
        raise SipParseError("no blank line after the header fields")
    message = _read_head(data[:end], limits)
    body = data[end + 4:]
    length = _content_length(message, required=False)
    if length is not None:
        if length > len(body):
            raise SipParseError(f"Content-Length {length} exceeds the {len(body)} body bytes "
                                "received", partial=message)
        body = body[:length]
    if len(body) > limits.max_body_bytes:
        raise SipParseError(f"body over {limits.max_body_bytes} bytes", partial=message,
                            status=513)
    return _finish(message, body)


class SipStreamParser:
    """Frames SIP messages on one TCP or TLS connection (RFC 3261 §18.3, RFC 5626 §4.4.1).

    Between messages a double CRLF is a keep-alive ping and a single CRLF a pong. A UA
    must see a pong at once (its pong timer is running), so by default a CRLF at the end
    of the data is a pong, and a ping split after its first CRLF reads as two pongs.
    ``server=True`` (the side that receives pings) waits for the next bytes instead.

    Args:
        limits: size limits; defaults to `SipLimits()`.
        server: hold a trailing lone CRLF until it is known to be a ping or not.
    """

    def __init__(self, limits: SipLimits | None = None, *, server: bool = False) -> None:
        self._limits = limits or SipLimits()
        self._server = server
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for the blank line
        # A header block read while its body arrives: (message or error, length, body start).
        self._pending: tuple[SipMessage | SipParseError, int, int] | None = None
        self._failed: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet delivered as an event."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Take the next bytes of the stream; return the events they complete.

        After an `InvalidMessage` with ``fatal`` set, the parser is finished.

        Raises:
            SipParseError: called again after a fatal event.
        """
        if self._failed is not None:
            raise SipParseError(f"stream already failed: {self._failed.reason}")
        self._buffer += data
        events: list[StreamEvent] = []
        offset = 0
        while (step := self._next(offset)) is not None:
            event, offset = step
            events.append(event)
            if isinstance(event, InvalidMessage) and event.fatal:
                self._failed = event.error
                self._buffer.clear()
                return events
        # Compact: offsets into the buffer (scan position, pending body) move with it.
        del self._buffer[:offset]
        self._scanned = max(0, self._scanned - offset)
        if self._pending is not None:
            head, length, body_start = self._pending
            self._pending = (head, length, body_start - offset)
        if len(self._buffer) > self._limits.max_buffered_bytes:  # implied by the others
            self._failed = SipParseError("too many bytes buffered", status=513)
            events.append(InvalidMessage(self._failed, fatal=True))
            self._buffer.clear()
        return events

    def _next(self, offset: int) -> tuple[StreamEvent, int] | None:
        """The next event from ``buffer[offset:]`` and the offset after it, or None."""
        buffer, limits = self._buffer, self._limits
        if self._pending is None:
            if buffer.startswith(KEEPALIVE_PING, offset):
                return KeepAlivePing(), offset + 4
            if buffer.startswith(b"\r\n", offset):
                rest = buffer[offset + 2:offset + 4]
                if self._server and KEEPALIVE_PING.startswith(b"\r\n" + rest):
                    return None  # maybe the first half of a ping: wait for more bytes
                return KeepAlivePong(), offset + 2
            remaining = len(buffer) - offset
            if remaining == 0 or (remaining == 1 and buffer[offset] == 0x0D):
                return None  # nothing yet, or a CR that may begin a CRLF
            start = max(offset, self._scanned - 3)
            end = buffer.find(b"\r\n\r\n", start, offset + limits.max_header_bytes)
            if end < 0:
                self._scanned = len(buffer)
                if len(buffer) - offset >= limits.max_header_bytes:
                    error = SipParseError(f"header block over {limits.max_header_bytes} bytes",
                                          status=513)
                    return InvalidMessage(error, fatal=True), len(buffer)
                return None
            framed = self._frame(bytes(buffer[offset:end]))
            if isinstance(framed, InvalidMessage):
                return framed, len(buffer)
            self._pending = (*framed, end + 4)
        head, length, body_start = self._pending
        if len(buffer) < body_start + length:
            return None
        self._pending = None
        self._scanned = body_start + length
        body = bytes(buffer[body_start:body_start + length])
        if isinstance(head, SipParseError):
            return InvalidMessage(head, fatal=False), body_start + length
        try:
            return _finish(head, body), body_start + length
        except SipParseError as error:
            return InvalidMessage(error, fatal=False), body_start + length

    def _frame(self, head: bytes) -> tuple[SipMessage | SipParseError, int] | InvalidMessage:
        """Read a header block: what it holds and its body length, or a fatal event."""
        try:
            message: SipMessage | SipParseError = _read_head(head, self._limits)
            framing = message
        except SipParseError as error:
            if error.partial is None:
                return InvalidMessage(error, fatal=True)
            message, framing = error, error.partial
        assert isinstance(framing, SipMessage)
        try:
            length = _content_length(framing, required=True)
        except SipParseError as error:
            return InvalidMessage(error, fatal=True)
        assert length is not None
        if length > self._limits.max_body_bytes:
            too_big = SipParseError(f"body over {self._limits.max_body_bytes} bytes",
                                    partial=framing, status=513)
            return InvalidMessage(too_big, fatal=True)
        return message, length


def _safe_reason(text: str) -> str:
    """A reason phrase from our own error text: printable ASCII, one short line."""
    return "".join(char if " " <= char <= "~" else "?" for char in text)[:120]


def bad_request_response(error: SipParseError, *, to_tag: str | None = None) -> SipResponse | None:
    """The response that answers a request the parsers rejected, or None to drop it.

    A reply is possible when ``error.partial`` is a request (not an ACK, which is never
    answered) with a Via and a CSeq: the client matches a response by its top Via branch
    and CSeq method (RFC 3261 §17.1.3). Via, From, To, Call-ID and CSeq are copied as
    received, whatever of them there is (RFC 3261 §8.2.6; RFC 4475 asks for a 400 even
    to a request missing From, To and Call-ID, or with a broken Via). A stream transport
    replies on the connection; a UDP one to the top Via, or to the datagram's source
    when that Via does not parse.

    Args:
        error: the parse error.
        to_tag: the To tag to add when the To has none (default: a random one).

    Returns:
        ``error.status`` (400, 505 or 513) with ``error.reason`` as the reason phrase.
    """
    request = error.partial
    if not isinstance(request, SipRequest) or request.method == "ACK":
        return None
    headers = request.headers
    if not headers.get_all("Via") or not headers.get_all("CSeq"):
        return None
    response = SipResponse(error.status, _safe_reason(error.reason))
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        values = headers.get_all(name)
        for value in values if name == "Via" else values[:1]:
            response.headers.add(name, _with_tag(value, to_tag) if name == "To" else value)
    return response


def _with_tag(to_value: str, tag: str | None) -> str:
    """The To value with a tag appended, unless it has one or cannot be parsed."""
    try:
        if parse_name_addr(to_value, "To").tag is not None:
            return to_value
    except SipParseError:
        return to_value  # copied as it came; it is what the error is about
    return f"{to_value};tag={tag or new_tag()}"


def build_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """A response to ``request``: Via(s), From, To, Call-ID and CSeq copied (RFC 3261 §8.2.6).

    Record-Route (dialog-creating responses) and Contact are the caller's to add.

    Args:
        request: the request answered.
        status: the status code.
        reason: the reason phrase; defaults to `REASON_PHRASES` (or ``""``).
        to_tag: appended to the To when it has no tag yet (every non-100 UAS response
            needs one, and it must stay the same for the whole dialog).
        headers: more fields to append, in order.
        body: the body.
    """
    response = SipResponse(status, REASON_PHRASES.get(status, "") if reason is None else reason)
    for value in request.headers.get_all("Via"):
        response.headers.add("Via", value)
    response.headers.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    response.headers.add("To", to if to_tag is None else _with_tag(to, to_tag))
    response.headers.add("Call-ID", request.headers.get("Call-ID") or "")
    response.headers.add("CSeq", request.headers.get("CSeq") or "")
    for name, value in headers:
        response.headers.add(name, value)
    response.body = body
    return response


def new_branch(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """A fresh Via branch: the RFC 3261 magic cookie ``z9hG4bK`` plus 96 random bits."""
    return "z9hG4bK" + random_bytes(12).hex()


def new_tag(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """A fresh From/To tag (64 random bits; RFC 3261 §19.3 asks for at least 32)."""
    return random_bytes(8).hex()


def new_call_id(random_bytes: RandomBytes = secrets.token_bytes, host: str | None = None) -> str:
    """A fresh Call-ID: 128 random bits, ``@host`` appended when given."""
    return random_bytes(16).hex() + (f"@{host}" if host else "")
