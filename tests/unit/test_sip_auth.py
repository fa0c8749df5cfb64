"""Digest authentication: published vectors, client <-> server round trips, stale nonces.

Known answers: RFC 2617 §3.5 (MD5, qop=auth), RFC 7616 §3.9.1 (SHA-256 and MD5), and
an RFC 2069 no-qop MD5 case worked out from the formula with hashlib alone, which is
what RingCentral's SDK computes (docs/RINGCENTRAL_SIP.md §3).
"""

from __future__ import annotations

import hashlib
import itertools

import pytest

from realtime_voice.sip.auth import (
    ALGORITHMS,
    AuthError,
    DigestChallenge,
    DigestClient,
    DigestServer,
    Verdict,
    choose_challenge,
    digest_response,
    parse_authorization,
    parse_challenge,
)
from realtime_voice.sip.uri import SipParseError

DOMAIN_URI = "sip:sip.ringcentral.com"


def test_rfc_2617_md5_qop_auth() -> None:
    assert digest_response(
        algorithm="MD5", username="Mufasa", realm="testrealm@host.com",
        password="Circle Of Life", method="GET", uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", nc="00000001",
        cnonce="0a4f113b",
    ) == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc_7616_vectors(algorithm: str, expected: str) -> None:
    assert digest_response(
        algorithm=algorithm, username="Mufasa", realm="http-auth@example.org",
        password="Circle of Life", method="GET", uri="/dir/index.html",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth", nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    ) == expected


def test_rfc_2069_md5_without_qop_as_ringcentral_computes_it() -> None:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5("16505550100:sip.ringcentral.com:s3cret")
    ha2 = md5(f"REGISTER:{DOMAIN_URI}")
    by_hand = md5(f"{ha1}:abc123nonce:{ha2}")
    assert by_hand == "af748b9d560c63d965faa2f9b164f6f8"
    assert digest_response(
        algorithm="MD5", username="16505550100", realm="sip.ringcentral.com",
        password="s3cret", method="REGISTER", uri=DOMAIN_URI, nonce="abc123nonce",
    ) == by_hand
    client = DigestClient("16505550100", "s3cret")
    header = client.authorization(
        parse_challenge('Digest realm="sip.ringcentral.com", nonce="abc123nonce"'),
        "REGISTER", DOMAIN_URI)
    assert header == (
        'Digest username="16505550100", realm="sip.ringcentral.com", nonce="abc123nonce", '
        f'uri="{DOMAIN_URI}", response="{by_hand}"')


def test_auth_int_hashes_the_body() -> None:
    common = {"algorithm": "MD5", "username": "u", "realm": "r", "password": "p",
              "method": "INVITE", "uri": "sip:b@h", "nonce": "n", "qop": "auth-int",
              "nc": "00000001", "cnonce": "c"}
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:b@h:" + hashlib.md5(b"v=0").hexdigest().encode()).hexdigest()
    expected = hashlib.md5(f"{ha1}:n:00000001:c:auth-int:{ha2}".encode()).hexdigest()
    assert digest_response(**common, body=b"v=0") == expected
    assert digest_response(**common, body=b"v=1") != expected


def test_parse_challenge_fields() -> None:
    challenge = parse_challenge(
        'Digest realm="sip.ringcentral.com",nonce="n\\"1", opaque="op", '
        'algorithm=sha-256, qop="auth-int, auth", stale=TRUE, domain="sip:x"',
        "Proxy-Authenticate")
    assert challenge == DigestChallenge(
        realm="sip.ringcentral.com", nonce='n"1', algorithm="SHA-256",
        qop=("auth-int", "auth"), opaque="op", stale=True)
    plain = parse_challenge("digest   realm=r,nonce=abc")
    assert (plain.algorithm, plain.qop, plain.stale, plain.algorithm_given) == (
        "MD5", (), False, False)
    assert parse_challenge(challenge.to_header()) == challenge


@pytest.mark.parametrize(("value", "problem"), [
    ("", "no scheme"), ("Basic realm=x", "not Digest"),
    ('Digest nonce="n"', "no realm"), ('Digest realm="r"', "no nonce"),
    ('Digest realm="r", nonce="n", algorithm=SHA-512', "unsupported algorithm"),
    ('Digest realm="r", nonce="n", qop="auth-conf"', "no supported qop"),
    ('Digest realm="r", nonce="n", algorithm=MD5-sess', "needs a qop"),
    ('Digest realm="r, nonce="n"', "unterminated"), ('Digest realm', "bad parameter"),
    ('Digest realm="r", realm="s", nonce="n"', "given twice"),
    ("Digest realm=a b, nonce=n", "bad value"),
    ('Digest realm=r, nonce="n" x', "not a quoted string"),
])
def test_malformed_challenges_are_clear_errors(value: str, problem: str) -> None:
    with pytest.raises(AuthError, match=problem) as caught:
        parse_challenge(value)
    assert isinstance(caught.value, SipParseError)


def test_choose_challenge_takes_the_first_supported() -> None:
    chosen = choose_challenge([
        'Basic realm="r"', 'Digest realm="r", nonce="a", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="b", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="c", algorithm=MD5, qop="auth"',
    ])
    assert (chosen.nonce, chosen.algorithm) == ("b", "SHA-256")
    with pytest.raises(AuthError, match="not Digest"):
        choose_challenge(['Basic realm="r"'])
    with pytest.raises(AuthError, match="no WWW-Authenticate"):
        choose_challenge([])


def test_client_counts_per_nonce_and_prefers_auth() -> None:
    cnonces = (f"c{i}" for i in itertools.count())
    client = DigestClient("u", "p", cnonce=lambda: next(cnonces))
    a = parse_challenge('Digest realm="r", nonce="A", qop="auth-int,auth", opaque="o"')
    b = parse_challenge('Digest realm="r", nonce="B", qop="auth-int"')
    first, second, other = (client.authorization(a, "REGISTER", "sip:r"),
                            client.authorization(a, "REGISTER", "sip:r"),
                            client.authorization(b, "INVITE", "sip:x", b"v=0"))
    creds = [parse_authorization(value) for value in (first, second, other)]
    assert [(c.nc, c.cnonce, c.qop) for c in creds] == [
        ("00000001", "c0", "auth"), ("00000002", "c1", "auth"), ("00000001", "c2", "auth-int")]
    assert creds[0].opaque == "o" and creds[2].opaque is None
    for nonce in "CDEFGHIJK":  # the client remembers a bounded number of nonces
        client.authorization(parse_challenge(f'Digest realm=r, nonce={nonce}, qop=auth'),
                             "X", "sip:r")
    assert parse_authorization(client.authorization(a, "X", "sip:r")).nc == "00000001"


@pytest.mark.parametrize(("algorithm", "qop"), [
    (algorithm, qop)
    for algorithm in ALGORITHMS for qop in [("auth",), ("auth-int",), ("auth", "auth-int"), ()]
    if qop or not algorithm.endswith("-sess")
])
def test_round_trip_every_algorithm_and_qop(algorithm: str, qop: tuple[str, ...]) -> None:
    server = DigestServer("sip.ringcentral.com", algorithm=algorithm, qop=qop, opaque="op",
                          clock=lambda: 1_000_000.0)
    client = DigestClient("16505550100", "s3cret")
    challenge = parse_challenge(server.challenge())
    assert challenge.algorithm == algorithm and challenge.qop == qop
    for _ in range(2):  # and again with the same nonce, nc counting up
        header = client.authorization(challenge, "INVITE", DOMAIN_URI, b"v=0\r\n")
        assert server.verify(header, method="INVITE", username="16505550100",
                             password="s3cret", body=b"v=0\r\n", uri=DOMAIN_URI) is Verdict.OK
    assert server.verify(header, method="INVITE", username="16505550100",
                         password="wrong", body=b"v=0\r\n") is Verdict.WRONG


def test_stale_nonce_then_retry_with_the_same_credentials() -> None:
    now = [1_000_000.0]
    server = DigestServer("r", clock=lambda: now[0], lifetime=60)
    client = DigestClient("u", "p")
    header = client.authorization(parse_challenge(server.challenge()), "REGISTER", "sip:r")
    now[0] += 61
    assert server.verify(header, method="REGISTER", username="u", password="p") is Verdict.STALE
    again = parse_challenge(server.challenge(stale=True))
    assert again.stale  # a fresh nonce: the password was right
    retry = client.authorization(again, "REGISTER", "sip:r")
    assert server.verify(retry, method="REGISTER", username="u", password="p") is Verdict.OK
    # A nonce from another server (say, before a restart) with a right digest is stale too.
    other = DigestServer("r", clock=lambda: now[0])
    foreign = client.authorization(parse_challenge(other.challenge()), "REGISTER", "sip:r")
    assert server.verify(foreign, method="REGISTER", username="u", password="p") is (
        Verdict.STALE)
    assert server.verify(foreign, method="REGISTER", username="u", password="x") is (
        Verdict.WRONG)


def test_verify_refuses_mismatches_and_replays() -> None:
    server = DigestServer("r", clock=lambda: 5e6)
    client = DigestClient("u", "p", cnonce=lambda: "fixed")
    header = client.authorization(parse_challenge(server.challenge()), "BYE", "sip:b@h")

    def verdict(value: str = header, **overrides: str) -> Verdict:
        kwargs = {"method": "BYE", "username": "u", "password": "p", **overrides}
        return server.verify(value, **kwargs)  # type: ignore[arg-type]

    assert verdict(username="v") is verdict(method="INVITE") is verdict(uri="sip:c@h") is (
        Verdict.WRONG)
    assert verdict() is Verdict.OK
    assert verdict() is Verdict.WRONG  # the same nc again: a replay
    no_qop = DigestClient("u", "p").authorization(
        parse_challenge(server.challenge().replace(', qop="auth"', "")), "BYE", "sip:b@h")
    assert verdict(no_qop) is Verdict.WRONG  # we offered a qop; it was dropped
    assert verdict(header.replace('realm="r"', 'realm="s"')) is Verdict.WRONG
    with pytest.raises(AuthError, match="not Digest"):
        verdict("NoOneKnowsThisScheme opaque-data=here")  # RFC 4475 regaut01


@pytest.mark.parametrize(("value", "problem"), [
    ('Digest username="u", realm="r", nonce="n", uri="sip:x"', "no response"),
    ('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth',
     "without cnonce"),
    ('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth, '
     'cnonce="c", nc=1', "without cnonce"),
    ('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=other',
     "unsupported qop"),
])
def test_malformed_credentials(value: str, problem: str) -> None:
    with pytest.raises(AuthError, match=problem):
        parse_authorization(value)


def test_bad_inputs_to_the_builders() -> None:
    with pytest.raises(AuthError, match="unsupported algorithm"):
        digest_response(algorithm="SHA-1", username="u", realm="r", password="p",
                        method="M", uri="u", nonce="n")
    with pytest.raises(AuthError, match="needs nc and cnonce"):
        digest_response(algorithm="MD5", username="u", realm="r", password="p",
                        method="M", uri="u", nonce="n", qop="auth")
    with pytest.raises(ValueError, match="unsupported"):
        DigestServer("r", algorithm="SHA-1")
    with pytest.raises(ValueError, match="needs a qop"):
        DigestServer("r", algorithm="SHA-256-sess", qop=())


def test_odd_code_points_hash_instead_of_raising() -> None:
    # \udcff is how the message parser carries a non-UTF-8 byte; \ud800 only a caller makes.
    server = DigestServer("r\ud800", clock=lambda: 1e6)
    client = DigestClient("u\udcff\ud800", "p")
    header = client.authorization(parse_challenge(server.challenge()), "REGISTER", "sip:r")
    assert server.verify(header, method="REGISTER", username="u\udcff\ud800",
                         password="p") is Verdict.OK
