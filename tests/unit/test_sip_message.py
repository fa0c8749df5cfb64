"""The SIP message layer: headers, URIs, Via, parsing, stream framing and replies.

RFC 4475's torture messages are in test_sip_torture.py; random input in
tests/fuzz/test_fuzz_sip.py. Here: each piece's contract, with RingCentral-shaped
messages (docs/RINGCENTRAL_SIP.md §3) where the shape matters.
"""

from __future__ import annotations

import itertools

import pytest

from realtime_voice.sip.headers import COMPACT_FORMS, Headers, canonical_name
from realtime_voice.sip.message import (
    InvalidMessage,
    KeepAlivePing,
    KeepAlivePong,
    SipLimits,
    SipParseError,
    SipRequest,
    SipResponse,
    SipStreamParser,
    bad_request_response,
    build_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_datagram,
)
from realtime_voice.sip.uri import (
    CSeq,
    NameAddr,
    OtherUri,
    SipUri,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_outside,
    unquote,
)

INSTANCE = '"<urn:uuid:00000000-0000-4000-8000-000000000001>"'
REGISTER = (
    "REGISTER sip:sip.ringcentral.com SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 10.0.0.2:50123;rport;branch=z9hG4bK-5f1c;alias\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:16505550100@sip.ringcentral.com>;tag=a1b2\r\n"
    "To: <sip:16505550100@sip.ringcentral.com>\r\n"
    "Call-ID: 3c6f7a2e-call\r\n"
    "CSeq: 8 REGISTER\r\n"
    "Contact: <sip:16505550100@10.0.0.2:50123;transport=TLS;ob>;reg-id=1;"
    f"+sip.instance={INSTANCE}\r\n"
    "Expires: 3600\r\n"
    "Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
).encode()
INVITE = (
    b"INVITE sip:bot@10.0.0.2:50123;transport=TLS;ob SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 199.255.120.10:5096;branch=z9hG4bK-e1,"
    b" SIP/2.0/TLS [2001:db8::7]:5061;branch=z9hG4bK-e2;received=2001:db8::7\r\n"
    b"From: \"Doe, Jane\" <sip:+16505550111@sip.ringcentral.com>;tag=x9\r\n"
    b"To: <sip:bot@sip.ringcentral.com>\r\n"
    b"Call-ID: inv-1@199.255.120.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Record-Route: <sip:199.255.120.10:5096;transport=tls;lr>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def _request(data: bytes = INVITE) -> SipRequest:
    message = parse_datagram(data)
    assert isinstance(message, SipRequest)
    return message


# --- headers ---------------------------------------------------------------------------


def test_compact_forms_expand_to_canonical_names() -> None:
    assert canonical_name("i") == canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("X-Odd-Header") == "X-Odd-Header"
    for letter, full in COMPACT_FORMS.items():
        headers = Headers([(letter.upper(), "1")])
        assert headers.get(full) == "1" and headers.get(letter) == "1"
        assert next(iter(headers))[0].lower() == full


def test_headers_keep_order_and_look_up_case_insensitively() -> None:
    headers = Headers([("Via", "a"), ("To", "t"), ("v", "b"), ("Route", "<x>")])
    assert headers.get_all("VIA") == ["a", "b"]
    headers.set("via", "c")
    assert list(headers) == [("Via", "c"), ("To", "t"), ("Route", "<x>")]
    headers.remove("ROUTE")
    assert "Route" not in headers and "to" in headers and len(headers) == 2
    with pytest.raises(ValueError, match="line break"):
        headers.add("Subject", "x\r\nVia: evil")


def test_list_values_split_outside_quotes_and_angles() -> None:
    headers = Headers([
        ("Contact", '"Doe, J" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>'),
        ("Contact", "sip:e@f"),
        ("Allow", "INVITE,,ACK , BYE"),
        ("Subject", "a, b"),
    ])
    assert headers.values("m") == ['"Doe, J" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>", "sip:e@f"]
    assert headers.values("Allow") == ["INVITE", "ACK", "BYE"]
    assert headers.values("Subject") == ["a, b"]  # not a list header
    with pytest.raises(SipParseError, match="unterminated quoted string"):
        split_outside('"open, x', ",")
    with pytest.raises(SipParseError, match="unclosed '<'"):
        split_outside("<sip:a, b", ",")
    assert unquote(r'"a \"b\" \\ c"') == 'a "b" \\ c'


# --- URIs, name-addr, Via, CSeq --------------------------------------------------------


def test_sip_uri_parts() -> None:
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=TLS;lr;ob?Subject=hi&X=1")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "[2001:db8::1]", 5061)
    assert uri.transport == "tls" and uri.lr and uri.params["ob"] is None
    assert uri.headers == {"Subject": "hi", "X": "1"}
    assert str(uri) == "sips:alice:secret@[2001:db8::1]:5061;transport=TLS;lr;ob?Subject=hi&X=1"
    plain = parse_uri("sip:sip.ringcentral.com")
    assert isinstance(plain, SipUri) and plain.user is None and plain.port is None
    assert parse_uri("tel:+16505550100") == OtherUri("tel", "+16505550100")


@pytest.mark.parametrize(("text", "problem"), [
    ("sip.example.com", "no scheme"), ("sip:", "no scheme"), ("sip:a b@c", "whitespace"),
    ("sip:@host", "empty user"), ("sip:host:99999", "bad port"), ("sip:host:x", "bad port"),
    ("sip:[::1", "bad host"), ("sip:ho$t", "bad host"), ("sip:h;;lr", "empty parameter"),
    ("sip:h?novalue", "bad URI header"), ("sip:a@", "bad host"),
])
def test_bad_uris(text: str, problem: str) -> None:
    with pytest.raises(SipParseError, match=problem):
        parse_uri(text)


def test_name_addr_forms() -> None:
    quoted = parse_name_addr(r'"Doe, \"JD\"" <sip:jd@example.com;transport=tcp>;tag=7', "From")
    assert quoted.display_name == 'Doe, "JD"' and quoted.tag == "7"
    assert isinstance(quoted.uri, SipUri) and quoted.uri.transport == "tcp"
    assert str(quoted) == r'"Doe, \"JD\"" <sip:jd@example.com;transport=tcp>;tag=7'
    tokens = parse_name_addr("Jane  Doe<sip:j@d>", "To")
    assert tokens.display_name == "Jane Doe"
    bare = parse_name_addr("sip:j@d;tag=1;expires=60", "To")  # params belong to the header
    assert bare.display_name is None and bare.params == {"tag": "1", "expires": "60"}
    assert isinstance(bare.uri, SipUri) and bare.uri.params == {}
    contact = parse_name_addr(f"<sip:u@10.0.0.2;ob>;reg-id=1;+sip.instance={INSTANCE}", "Contact")
    assert contact.params == {"reg-id": "1", "+sip.instance": INSTANCE}
    assert unquote(contact.params["+sip.instance"] or "").startswith("<urn:uuid:")
    assert parse_name_addr(str(contact), "Contact") == contact


@pytest.mark.parametrize(("text", "problem"), [
    ('"unterminated <sip:a@b>', "unterminated"), ('"Name" sip:a@b', "followed by <URI>"),
    ("Doe, J <sip:a@b>", "must be quoted"), ("<sip:a@b", "without '>'"),
    ("< sip:a@b >", "whitespace"), ("<sip:a@b> junk", "unexpected"),
    ("sip:a@b?x=1", "enclosed in <>"), ("<sip:a@b>;", "empty parameter"),
    ("<sip:a@b>;ta g=1", "bad parameter name"), ("<sip:a@b>;tag=a b", "bad value"),
])
def test_bad_name_addrs(text: str, problem: str) -> None:
    with pytest.raises(SipParseError, match=problem):
        parse_name_addr(text, "To")


def test_via_ringcentral_request_and_response_forms() -> None:
    ours = parse_via("SIP/2.0/TLS 10.0.0.2:50123;rport;branch=z9hG4bK-5f1c;alias")
    assert (ours.protocol, ours.transport, ours.host, ours.port) == ("SIP/2.0", "TLS",
                                                                     "10.0.0.2", 50123)
    assert ours.has_rport and ours.rport is None and ours.alias
    assert ours.branch == "z9hG4bK-5f1c" and ours.received is None
    assert str(ours) == "SIP/2.0/TLS 10.0.0.2:50123;rport;branch=z9hG4bK-5f1c;alias"
    answered = parse_via("SIP/2.0/tls 10.0.0.2:50123;rport=40000;received=203.0.113.9;branch=b")
    assert answered.transport == "TLS" and answered.rport == 40000
    assert answered.received == "203.0.113.9" and not answered.alias
    v6 = parse_via("SIP / 2.0 / UDP [2001:db8::9] : 5060 ; branch = z9hG4bKx")
    assert (v6.host, v6.port, v6.branch) == ("[2001:db8::9]", 5060, "z9hG4bKx")


@pytest.mark.parametrize("text", [
    "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host:0", "SIP/2.0/UDP [::1;branch=x",
    "SIP/2.0/UDP host;rport=abc", "SIP/2.0/UDP host;branch=", "SIP/2.0/UDP host;;",
    "SIP/2.0/U,DP host",
])
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


def test_cseq() -> None:
    assert parse_cseq(" 0009  INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(2**31 - 1, "BYE")) == "2147483647 BYE"
    for bad in ("INVITE", "1", "-1 INVITE", "2147483648 INVITE", "1 IN VITE", "1 IN\"V"):
        with pytest.raises(SipParseError, match="CSeq"):
            parse_cseq(bad)


# --- messages: accessors, serialize ----------------------------------------------------


def test_invite_accessors() -> None:
    invite = _request()
    assert invite.method == "INVITE" and isinstance(invite.uri, SipUri)
    assert invite.uri.params == {"transport": "TLS", "ob": None}
    assert [via.host for via in invite.via] == ["199.255.120.10", "[2001:db8::7]"]
    assert invite.via[1].received == "2001:db8::7"
    assert invite.from_.display_name == "Doe, Jane" and invite.from_.tag == "x9"
    assert invite.to.tag is None and invite.call_id == "inv-1@199.255.120.10"
    assert invite.cseq == CSeq(1, "INVITE") and invite.max_forwards is None
    assert invite.body == b"v=0\n" and "Content-Length" not in invite.headers
    assert invite.contacts == [] and not invite.is_contact_wildcard


def test_register_accessors() -> None:
    register = _request(REGISTER)
    [contact] = register.contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.transport == "tls"
    assert contact.params["reg-id"] == "1" and register.expires == 3600
    assert register.headers.values("Allow")[:3] == ["PRACK", "INVITE", "ACK"]
    register.headers.set("Expires", "9" * 40)
    assert register.expires == 2**32 - 1  # RFC 3261 §20.19
    register.headers.set("Contact", "*")
    assert register.contacts == [] and register.is_contact_wildcard
    register.headers.set("Expires", "soon")
    with pytest.raises(SipParseError, match="Expires"):
        _ = register.expires


def test_serialize_computes_content_length_and_round_trips() -> None:
    invite = _request()
    invite.headers.add("Content-Length", "999")  # a stale value must never go out
    invite.body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\n"
    wire = invite.serialize()
    assert wire.count(b"Content-Length") == 1
    assert wire.endswith(b"Content-Length: 30\r\n\r\n" + invite.body)
    invite.headers.remove("Content-Length")
    assert parse_datagram(wire) == invite
    again = parse_datagram(_request(REGISTER).serialize())
    assert again == _request(REGISTER)


def test_a_message_built_from_parts() -> None:
    request = SipRequest("OPTIONS", SipUri("sip.ringcentral.com"), headers=Headers([
        ("v", f"SIP/2.0/TLS 10.0.0.2:5061;branch={new_branch(bytes)}"),
        ("f", "<sip:a@b>;tag=1"), ("t", "<sip:a@b>"), ("i", "c1"), ("CSeq", "1 OPTIONS"),
    ]))
    wire = request.serialize()
    assert wire.startswith(b"OPTIONS sip:sip.ringcentral.com SIP/2.0\r\nVia: SIP/2.0/TLS")
    assert parse_datagram(wire) == request


# --- datagrams -------------------------------------------------------------------------


def test_datagram_content_length_is_optional_and_extra_bytes_are_dropped() -> None:
    no_length = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert _request(no_length).body == b"v=0\n"
    assert _request(INVITE + b"garbage").body == b"v=0\n"
    assert parse_datagram(b"\r\n\r\n") is None and parse_datagram(b"") is None
    assert _request(b"\r\n" + INVITE).method == "INVITE"  # RFC 3261 §7.5


@pytest.mark.parametrize(("data", "problem", "status"), [
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 5"), "exceeds the 4", 400),
    (INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), "does not match", 400),
    (INVITE.replace(b"To: <sip:bot", b"To: <sip :bot"), "whitespace", 400),
    (INVITE.replace(b"Call-ID: inv-1", b"Call-ID: inv 1"), "bad Call-ID", 400),
    (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), "unsupported version", 505),
    (INVITE.replace(b"To:", b"To\x00:"), "bad header line", 400),
    (INVITE.replace(b"\r\nTo:", b"\nTo:"), "bare CR or LF", 400),
    (INVITE.replace(b"CSeq: 1 INVITE", b"Max-Forwards: 256\r\nCSeq: 1 INVITE"),
     "Max-Forwards", 400),
    (INVITE.replace(b"/TLS 199", b"/TLS ;199"), "bad Via", 400),
    (INVITE.replace(b"120.10:5096;", b"120.10:99999;", 1), "bad port", 400),
])
def test_datagram_errors_name_the_problem(data: bytes, problem: str, status: int) -> None:
    with pytest.raises(SipParseError, match=problem) as caught:
        parse_datagram(data)
    assert caught.value.status == status and caught.value.reason == str(caught.value)
    reply = bad_request_response(caught.value, to_tag="t")
    assert reply is not None and reply.status == status


@pytest.mark.parametrize(("data", "problem"), [
    (INVITE.replace(b"\r\n\r\n", b"\r\n"), "no blank line"),
    (INVITE.replace(b"Via", b" Via", 1), "continuation line"),  # so: no Via to answer to
    (INVITE.replace(b"INVITE sip", b"INVITE\x00 sip", 1), "bad start line"),
    (INVITE.replace(b"CSeq: 1 INVITE\r\n", b""), "missing CSeq"),
])
def test_datagram_errors_without_a_reply(data: bytes, problem: str) -> None:
    with pytest.raises(SipParseError, match=problem) as caught:
        parse_datagram(data)
    assert bad_request_response(caught.value) is None


def test_datagram_limits() -> None:
    limits = SipLimits(max_header_bytes=200, max_body_bytes=2, max_headers=5,
                       max_buffered_bytes=202)
    with pytest.raises(SipParseError, match="header block over 200") as caught:
        parse_datagram(INVITE + b"x" * 300, limits)
    assert caught.value.partial is None and caught.value.status == 513
    small = SipLimits(max_header_bytes=1000, max_body_bytes=2, max_headers=20)
    with pytest.raises(SipParseError, match="body over 2 bytes") as caught:
        parse_datagram(INVITE, small)
    assert caught.value.status == 513 and bad_request_response(caught.value) is not None
    with pytest.raises(SipParseError, match="more than 5 header fields"):
        parse_datagram(INVITE, SipLimits(max_headers=5))
    with pytest.raises(ValueError, match="positive"):
        SipLimits(max_headers=0)
    with pytest.raises(ValueError, match="must hold"):
        SipLimits(max_buffered_bytes=10)


# --- streams ---------------------------------------------------------------------------


def test_stream_byte_by_byte_and_pipelined() -> None:
    parser = SipStreamParser()
    events = [event for byte in INVITE + REGISTER for event in parser.feed(bytes([byte]))]
    assert events == [_request(), _request(REGISTER)] and parser.buffered == 0
    assert SipStreamParser().feed(INVITE * 3 + REGISTER) == [_request()] * 3 + [
        _request(REGISTER)]


def test_stream_split_at_every_byte_of_pipelined_messages() -> None:
    # Regression: a body still arriving after earlier messages in the same chunk.
    data = REGISTER + INVITE + b"\r\n\r\n" + INVITE
    whole = SipStreamParser(server=True).feed(data)
    assert len(whole) == 4
    for cut in range(len(data) + 1):
        parser = SipStreamParser(server=True)
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole, cut


def test_stream_keepalives() -> None:
    parser = SipStreamParser()
    assert parser.feed(b"\r\n\r\n") == [KeepAlivePing()]
    assert parser.feed(b"\r\n") == [KeepAlivePong()]
    assert parser.feed(b"\r\n\r\n\r\n" + INVITE) == [KeepAlivePing(), KeepAlivePong(), _request()]
    assert parser.feed(b"\r") == [] and parser.feed(b"\n") == [KeepAlivePong()]
    # A UA reads a lone trailing CRLF as a pong at once; a server waits to see a ping.
    client, server = SipStreamParser(), SipStreamParser(server=True)
    assert client.feed(b"\r\n") == [KeepAlivePong()] and client.feed(b"\r\n") == [KeepAlivePong()]
    assert server.feed(b"\r\n") == [] and server.feed(b"\r") == []
    assert server.feed(b"\n") == [KeepAlivePing()]
    assert server.feed(b"\r\nINV") == [KeepAlivePong()]


def test_stream_skips_a_broken_message_whose_framing_holds() -> None:
    broken = INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    events = SipStreamParser().feed(broken + REGISTER)
    assert isinstance(events[0], InvalidMessage) and not events[0].fatal
    assert "CSeq" in events[0].error.reason and events[1] == _request(REGISTER)
    reply = bad_request_response(events[0].error, to_tag="t")
    assert reply is not None and reply.headers.get("CSeq") == "one INVITE"


@pytest.mark.parametrize(("data", "problem"), [
    (INVITE.replace(b"Content-Length: 4\r\n", b""), "missing Content-Length"),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: x"), "bad Content-Length"),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 4\r\nl: 5"), "conflicting"),
    (b"\x00\x01garbage\r\n\r\n", "bad start line"),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 70000"), "body over 65536"),
    (b"INVITE " + b"a" * 20000, "header block over 16384"),
])
def test_stream_fatal_errors(data: bytes, problem: str) -> None:
    parser = SipStreamParser()
    events = parser.feed(REGISTER + data)
    assert events[0] == _request(REGISTER) and len(events) == 2
    assert isinstance(events[1], InvalidMessage) and events[1].fatal
    assert problem in events[1].error.reason and parser.buffered == 0
    with pytest.raises(SipParseError, match="stream already failed"):
        parser.feed(REGISTER)


def test_stream_buffer_limit_holds_when_fed_slowly() -> None:
    limits = SipLimits(max_header_bytes=600, max_body_bytes=100, max_buffered_bytes=700)
    parser = SipStreamParser(limits)
    head = INVITE.split(b"\r\n\r\n")[0].replace(b"Content-Length: 4", b"Content-Length: 100")
    assert parser.feed(head[:250]) == [] and parser.buffered == 250
    events = parser.feed(head[250:] + b"\r\n\r\n" + b"x" * 99)
    assert events == [] and parser.buffered <= limits.max_buffered_bytes
    [message] = parser.feed(b"x")
    assert isinstance(message, SipRequest) and message.body == b"x" * 100


# --- replies and identifiers -----------------------------------------------------------


def test_bad_request_response_copies_and_tags() -> None:
    broken = INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    with pytest.raises(SipParseError) as caught:
        parse_datagram(broken)
    reply = bad_request_response(caught.value, to_tag="ours")
    assert reply is not None and reply.status == 400
    assert reply.reason == "CSeq method 'BYE' does not match the request"
    assert reply.headers.get_all("Via") == _request().headers.get_all("Via")
    assert reply.headers.get("To") == "<sip:bot@sip.ringcentral.com>;tag=ours"
    assert reply.serialize().startswith(b"SIP/2.0 400 CSeq method 'BYE' does not match")
    weird = SipParseError("bad \x00\u00e9 thing", partial=_request())
    assert bad_request_response(weird) is not None
    assert bad_request_response(weird).reason == "bad ?? thing"  # type: ignore[union-attr]


def test_bad_request_response_drops_what_cannot_be_answered() -> None:
    ack = _request().headers.copy()
    assert bad_request_response(SipParseError("x", partial=SipRequest(
        "ACK", SipUri("h"), headers=ack))) is None
    assert bad_request_response(SipParseError("x", partial=SipResponse(200, "OK"))) is None
    assert bad_request_response(SipParseError("x")) is None
    no_cseq = _request().headers.copy()
    no_cseq.remove("CSeq")
    assert bad_request_response(SipParseError("x", partial=SipRequest(
        "INVITE", SipUri("h"), headers=no_cseq))) is None


def test_build_response() -> None:
    invite = _request()
    trying = build_response(invite, 100)
    assert trying.reason == "Trying" and trying.headers.get("To") == invite.headers.get("To")
    ok = build_response(invite, 200, to_tag="t1", headers=[
        ("Contact", "<sip:bot@10.0.0.2:50123;transport=TLS;ob>"),
        ("Content-Type", "application/sdp")], body=b"v=0\r\n")
    assert [name for name, _ in ok.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type"]
    assert ok.headers.get_all("Via") == invite.headers.get_all("Via")
    assert ok.to.tag == "t1" and ok.from_ == invite.from_ and ok.cseq == invite.cseq
    parsed = parse_datagram(ok.serialize())
    assert parsed == ok and isinstance(parsed, SipResponse)
    retagged = build_response(_request(ok.serialize().replace(b"SIP/2.0 200 OK",
                                                              b"BYE sip:h SIP/2.0")
                                       .replace(b"1 INVITE", b"1 BYE")), 200, to_tag="t2")
    assert retagged.to.tag == "t1"  # a To that has a tag keeps it
    assert build_response(invite, 299).reason == "" and build_response(invite, 486).reason == (
        "Busy Here")


def test_identifiers_are_random_or_injected() -> None:
    counter = itertools.count()

    def fake(n: int) -> bytes:
        return bytes([next(counter)] * n)

    assert new_branch(fake) == "z9hG4bK" + "00" * 12
    assert new_tag(fake) == "01" * 8
    assert new_call_id(fake, host="10.0.0.2") == "02" * 16 + "@10.0.0.2"
    assert new_branch() != new_branch() and len(new_tag()) == 16 and "@" not in new_call_id()


def test_name_addr_always_serializes_with_angle_brackets() -> None:
    addr = NameAddr(SipUri("h", user="u", params={"transport": "tls"}), None, {"tag": "1"})
    assert str(addr) == "<sip:u@h;transport=tls>;tag=1"
    assert str(NameAddr(OtherUri("tel", "+1"), 'A "B"')) == '"A \\"B\\"" <tel:+1>'


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(SipParseError, match="parameter TAG given twice in To"):
        parse_name_addr("<sip:a@b>;tag=1;TAG=2", "To")
