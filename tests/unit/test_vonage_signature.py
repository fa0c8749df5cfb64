"""Vonage signed webhooks: the HS256 ``Authorization: Bearer`` JWT and its payload hash.

Also the RS256 application JWT our REST calls carry (`VonageJwtMinter`), checked with
the public key the way Vonage checks it. Keys are generated here, never committed.
"""

from __future__ import annotations

import hashlib
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from realtime_voice.carriers.vonage_jwt import VonageJwtMinter
from realtime_voice.security.vonage_signature import (
    VonageSignatureError,
    VonageWebhookVerifier,
    compact_json_hash,
    payload_hash,
    sign_vonage_webhook,
)

SECRET = "7c2bd0c3a1f54c0e9a7e1b4d2f6c8e0a"
NOW = 1_765_120_000.0
BODY = (
    b'{"from": "447700900000", "to": "442079460000", '
    b'"uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", "status": "answered"}'
)
QUERY = [
    ("to", "442079460000"),
    ("from", "447700900000"),
    ("uuid", "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"),
    ("conversation_uuid", "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab"),
]


def verifier(now: float = NOW) -> VonageWebhookVerifier:
    return VonageWebhookVerifier(SECRET, clock=lambda: now)


def bearer(body_hash: str, *, iat: float = NOW, secret: str = SECRET) -> str:
    return "Bearer " + sign_vonage_webhook(secret, body_hash, iat=int(iat))


def test_payload_hash_is_sha256_hex() -> None:
    assert payload_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()
    # Compact JSON as JavaScript writes it: no spaces, non-ASCII kept.
    assert compact_json_hash({"a": "é", "b": 1}) == payload_hash('{"a":"é","b":1}'.encode())


def test_the_token_has_vonages_claims() -> None:
    token = sign_vonage_webhook(SECRET, "h", iat=int(NOW))
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})
    assert set(claims) == {"iat", "jti", "iss", "payload_hash", "api_key", "application_id"}
    assert claims["iss"] == "Vonage"


def test_a_signed_post_passes_with_the_raw_body_hash() -> None:
    claims = verifier().verify(bearer(payload_hash(BODY)), body=BODY)
    assert claims["payload_hash"] == payload_hash(BODY)


def test_a_signed_post_passes_with_the_compact_json_hash() -> None:
    # Vonage's support article: hash the body object as JSON with no whitespace.
    compact = compact_json_hash(json.loads(BODY))
    assert compact != payload_hash(BODY)
    verifier().verify(bearer(compact), body=BODY)


def test_a_signed_get_passes_with_the_query_object_hash() -> None:
    verifier().verify(bearer(compact_json_hash(dict(QUERY))), query=QUERY)


def test_the_header_scheme_is_case_insensitive() -> None:
    token = bearer(payload_hash(BODY)).replace("Bearer ", "bearer ")
    verifier().verify(token, body=BODY)


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer x" * 2000])
def test_missing_or_non_bearer_authorization(header: str | None) -> None:
    with pytest.raises(VonageSignatureError):
        verifier().verify(header, body=BODY)


def test_a_tampered_body_fails() -> None:
    with pytest.raises(VonageSignatureError, match="payload_hash does not match"):
        verifier().verify(bearer(payload_hash(BODY)), body=BODY.replace(b"answered", b"complete"))


def test_a_tampered_query_fails() -> None:
    token = bearer(compact_json_hash(dict(QUERY)))
    changed = [(k, "15550100" if k == "from" else v) for k, v in QUERY]
    with pytest.raises(VonageSignatureError, match="payload_hash"):
        verifier().verify(token, query=changed)


def test_the_wrong_secret_fails() -> None:
    with pytest.raises(VonageSignatureError, match="signature does not match"):
        verifier().verify(bearer(payload_hash(BODY), secret="x" * 32), body=BODY)


def test_an_unsigned_or_rs256_token_is_refused() -> None:
    claims = {"iat": int(NOW), "payload_hash": payload_hash(BODY)}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(VonageSignatureError, match="malformed token"):
        verifier().verify("Bearer " + unsigned, body=BODY)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(VonageSignatureError):
        verifier().verify("Bearer " + jwt.encode(claims, key, algorithm="RS256"), body=BODY)


@pytest.mark.parametrize("token", ["a.b.c", "not a jwt", "x" * 100])
def test_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(VonageSignatureError):
        verifier().verify("Bearer " + token, body=BODY)


def test_a_token_without_payload_hash_fails() -> None:
    token = jwt.encode({"iat": int(NOW)}, SECRET, algorithm="HS256")
    with pytest.raises(VonageSignatureError, match="no payload_hash"):
        verifier().verify("Bearer " + token, body=BODY)


@pytest.mark.parametrize("iat", [None, "1765120000", True])
def test_a_token_without_a_numeric_iat_fails(iat: object) -> None:
    claims: dict[str, object] = {"payload_hash": payload_hash(BODY)}
    if iat is not None:
        claims["iat"] = iat
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(VonageSignatureError, match="iat"):
        verifier().verify("Bearer " + token, body=BODY)


def test_age_limits() -> None:
    h = payload_hash(BODY)
    verifier().verify(bearer(h, iat=NOW - 299), body=BODY)
    verifier().verify(bearer(h, iat=NOW + 59), body=BODY)
    with pytest.raises(VonageSignatureError, match="older than 300 s"):
        verifier().verify(bearer(h, iat=NOW - 301), body=BODY)
    with pytest.raises(VonageSignatureError, match="in the future"):
        verifier().verify(bearer(h, iat=NOW + 61), body=BODY)


def test_an_expired_exp_fails() -> None:
    claims = {"iat": int(NOW) - 10, "exp": int(NOW) - 100, "payload_hash": payload_hash(BODY)}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(VonageSignatureError, match="expired"):
        verifier().verify("Bearer " + token, body=BODY)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        VonageWebhookVerifier("")


# --- the application JWT (RS256) ---------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_pem() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_application_jwt_claims_and_signature(rsa_pem: tuple[str, bytes]) -> None:
    private, public = rsa_pem
    minter = VonageJwtMinter("app-123", private, clock=lambda: NOW)
    token = minter.mint()
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    claims = jwt.decode(
        token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["application_id"] == "app-123"
    assert claims["iat"] == int(NOW)
    assert claims["exp"] == int(NOW) + 900
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert minter.mint() != token  # a fresh jti every time


def test_application_jwt_verifies_now(rsa_pem: tuple[str, bytes]) -> None:
    private, public = rsa_pem
    token = VonageJwtMinter("app-123", private.encode()).mint()
    assert jwt.decode(token, public, algorithms=["RS256"])["exp"] > time.time()


def test_application_jwt_refuses_bad_keys() -> None:
    with pytest.raises(ValueError, match="not a PEM private key"):
        VonageJwtMinter("app", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="RSA private key"):
        VonageJwtMinter("app", ec_pem)
    with pytest.raises(ValueError, match="application id"):
        VonageJwtMinter("", ec_pem)
