"""Fuzzing the SIP message layer and digest parsing: only `SipParseError` ever escapes.

Random bytes and mutations of valid messages go into `parse_datagram` and into
`SipStreamParser` in random chunks; whatever comes out must be a message that
re-serializes to itself, or a `SipParseError` naming the problem, and the stream's
buffer never passes its limit. A valid message split at any byte boundaries frames
exactly as it does whole. Digest headers go through the auth parsers and the server's
verify, which may raise only `AuthError`.
"""

from __future__ import annotations

import contextlib
import typing

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.sip.auth import (
    AuthError,
    DigestClient,
    DigestServer,
    parse_authorization,
    parse_challenge,
)
from realtime_voice.sip.message import (
    InvalidMessage,
    SipLimits,
    SipParseError,
    SipRequest,
    SipResponse,
    SipStreamParser,
    StreamEvent,
    bad_request_response,
    parse_datagram,
)
from realtime_voice.sip.uri import NameAddr, SipUri, parse_name_addr
from tests.fuzz import EXAMPLES
from tests.unit.test_sip_message import INVITE, REGISTER
from tests.unit.test_sip_torture import TORTURE

LIMITS = SipLimits(max_header_bytes=2048, max_body_bytes=1024, max_headers=40,
                   max_buffered_bytes=3072)
# Seeds for mutation: ours plus all 49 RFC 4475 messages, valid and invalid.
SEEDS = [INVITE, REGISTER] + [TORTURE[name] for name in sorted(TORTURE)]
VALID = [seed for seed in SEEDS if [type(e) for e in SipStreamParser().feed(seed)] in (
    [SipRequest], [SipResponse])]
SIP_BYTES = st.sampled_from([*list(b'\r\n :;,<>"\\@=/?%[]\x00\xff'), ord("a"), ord("0")])


def _check_datagram(data: bytes) -> None:
    try:
        message = parse_datagram(data, LIMITS)
    except SipParseError as error:
        assert error.reason and error.status in (400, 505, 513)
        reply = bad_request_response(error)
        if reply is not None:
            # It copies the broken headers as received, so it need not parse; it must
            # serialize, and its start line and Via (for routing) must come through.
            wire = reply.serialize()
            assert wire.startswith(f"SIP/2.0 {error.status} ".encode())
            assert b"\r\nVia: " in wire and b"\r\nCSeq: " in wire
        return
    if message is not None:
        assert len(message.body) <= LIMITS.max_body_bytes
        assert parse_datagram(message.serialize(), SipLimits()) == message


def _check_stream(data: bytes, cuts: list[int]) -> list[StreamEvent]:
    parser = SipStreamParser(LIMITS)
    events: list[StreamEvent] = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        chunk = data[previous:cut]
        previous = max(previous, cut)
        try:
            events += parser.feed(chunk)
        except SipParseError as error:  # only after a fatal event
            assert "already failed" in error.reason
            assert isinstance(events[-1], InvalidMessage) and events[-1].fatal
            break
        assert parser.buffered <= LIMITS.max_buffered_bytes
    for event in events:
        assert isinstance(event, typing.get_args(StreamEvent))
        if isinstance(event, SipRequest | SipResponse):
            assert len(event.body) <= LIMITS.max_body_bytes
    return events


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with a few bytes flipped, inserted, deleted or lines repeated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "truncate"]))
        if action == "flip" and at < len(data):
            data[at] = draw(SIP_BYTES)
        elif action == "insert":
            data[at:at] = bytes(draw(st.lists(SIP_BYTES, min_size=1, max_size=4)))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif action == "repeat":
            end = data.find(b"\r\n", at)
            data[at:at] = data[at:end + 2] if end >= 0 else b""
        else:
            del data[at:]
    return bytes(data)


@settings(max_examples=1000 * EXAMPLES)
@given(st.binary(max_size=300))
def test_random_bytes_as_a_datagram(data: bytes) -> None:
    _check_datagram(data)
    _check_datagram(b"INVITE sip:a@b SIP/2.0\r\n" + data)


@settings(max_examples=1000 * EXAMPLES)
@given(mutated())
def test_mutated_messages_as_a_datagram(data: bytes) -> None:
    _check_datagram(data)


@settings(max_examples=500 * EXAMPLES)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_on_a_stream(data: bytes, cuts: list[int]) -> None:
    _check_stream(data, cuts)
    _check_stream(b"\r\n\r\nSIP/2.0 200 OK\r\nl: 3\r\n" + data, cuts)


@settings(max_examples=1000 * EXAMPLES)
@given(st.lists(mutated(), min_size=1, max_size=3), st.lists(st.integers(0, 4000), max_size=6))
def test_mutated_messages_on_a_stream(messages: list[bytes], cuts: list[int]) -> None:
    _check_stream(b"".join(messages), cuts)


@settings(max_examples=1000 * EXAMPLES)
@given(st.lists(st.sampled_from([*VALID, b"\r\n\r\n"]), min_size=1, max_size=4),
       st.lists(st.integers(0, 8000), max_size=8))
def test_valid_messages_split_anywhere_frame_the_same(
    messages: list[bytes], cuts: list[int],
) -> None:
    data = b"".join(messages)
    whole = SipStreamParser(server=True).feed(data)
    parser = SipStreamParser(server=True)
    pieces: list[StreamEvent] = []
    previous = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        pieces += parser.feed(data[previous:cut])
        previous = cut
    assert pieces == whole and parser.buffered == 0
    assert not any(isinstance(event, InvalidMessage) for event in whole)


@settings(max_examples=1000 * EXAMPLES)
@given(st.text(max_size=120) | st.builds(lambda tail: "Digest " + tail, st.text(max_size=120)))
def test_digest_headers_raise_only_auth_error(value: str) -> None:
    for parse in (parse_challenge, parse_authorization):
        try:
            parse(value)
        except AuthError as error:
            assert error.reason
    server = DigestServer("r", clock=lambda: 1e6)
    with contextlib.suppress(AuthError):
        server.verify(value, method="REGISTER", username="u", password="p")


@settings(max_examples=300 * EXAMPLES)
@given(st.text(st.characters(exclude_characters="\r\n"), max_size=30),
       st.dictionaries(st.sampled_from(["realm", "nonce", "opaque"]),
                       st.text(st.characters(exclude_characters="\r\n"), max_size=20)))
def test_digest_round_trip_with_odd_values(username: str, odd: dict[str, str]) -> None:
    # Quotes, backslashes and commas in any value survive quoting and parsing.
    realm = odd.get("realm", "r")
    server = DigestServer(realm, opaque=odd.get("opaque"), clock=lambda: 1e6)
    header = DigestClient(username, "pw").authorization(
        parse_challenge(server.challenge()), "REGISTER", "sip:r")
    assert parse_authorization(header).username == username
    assert server.verify(header, method="REGISTER", username=username, password="pw").value == "ok"


DISPLAY = st.none() | st.text(st.characters(exclude_characters="\r\n", codec="utf-8"),
                              max_size=20)
TOKEN = st.text("abcXYZ019-._!%*+`'~", min_size=1, max_size=8)


@settings(max_examples=500 * EXAMPLES)
@given(DISPLAY, TOKEN, st.sampled_from(["example.com", "10.0.0.2", "[2001:db8::1]"]),
       st.none() | st.integers(1, 65535),
       st.dictionaries(TOKEN.map(str.lower), st.none() | TOKEN, max_size=3),
       st.dictionaries(TOKEN.map(str.lower), st.none() | TOKEN, max_size=3))
def test_name_addr_round_trips(
    display: str | None, user: str, host: str, port: int | None,
    uri_params: dict[str, str | None], params: dict[str, str | None],
) -> None:
    addr = NameAddr(SipUri(host, user=user, port=port, params=uri_params), display, params)
    assert parse_name_addr(str(addr), "To") == addr
