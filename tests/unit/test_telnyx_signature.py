"""Telnyx webhook signatures: Ed25519 over ``timestamp|body``, with a freshness window.

The key pair is generated here (never committed); Telnyx's side is played by signing
exactly what its SDKs verify: ``f"{telnyx-timestamp}|{raw body}"``, base64 signature.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from realtime_voice.security.telnyx_signature import (
    DEFAULT_TOLERANCE_S,
    TelnyxSignatureError,
    TelnyxWebhookVerifier,
)

NOW = 1_765_000_000
BODY = b"AccountSid=f5586561&CallSid=v3%3A9X2vxPDF&From=%2B35319605860&To=%2B13129457420"


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(key: Ed25519PrivateKey) -> TelnyxWebhookVerifier:
    return TelnyxWebhookVerifier(public_b64(key), clock=lambda: NOW)


def test_telnyx_signature_is_accepted(
    key: Ed25519PrivateKey, verifier: TelnyxWebhookVerifier
) -> None:
    stamp = str(NOW)
    verifier.verify(BODY, sign(key, stamp, BODY), stamp)
    assert verifier.is_valid(BODY, sign(key, stamp, BODY), stamp)
    assert verifier.is_valid(b"", sign(key, stamp, b""), stamp)  # an empty body is signed too


@pytest.mark.parametrize("skew", [-DEFAULT_TOLERANCE_S, DEFAULT_TOLERANCE_S, -1, 1])
def test_timestamps_within_the_tolerance_either_way(
    key: Ed25519PrivateKey, verifier: TelnyxWebhookVerifier, skew: float
) -> None:
    stamp = str(int(NOW + skew))
    verifier.verify(BODY, sign(key, stamp, BODY), stamp)


@pytest.mark.parametrize("skew", [-DEFAULT_TOLERANCE_S - 1, DEFAULT_TOLERANCE_S + 1, -86400])
def test_stale_or_future_timestamps_are_refused(
    key: Ed25519PrivateKey, verifier: TelnyxWebhookVerifier, skew: float
) -> None:
    stamp = str(int(NOW + skew))
    with pytest.raises(TelnyxSignatureError) as info:
        verifier.verify(BODY, sign(key, stamp, BODY), stamp)
    assert info.value.reason == "stale_timestamp"


def test_the_tolerance_is_configurable(key: Ed25519PrivateKey) -> None:
    strict = TelnyxWebhookVerifier(public_b64(key), tolerance_s=10, clock=lambda: NOW)
    stamp = str(NOW - 11)
    assert not strict.is_valid(BODY, sign(key, stamp, BODY), stamp)
    stamp = str(NOW - 10)
    assert strict.is_valid(BODY, sign(key, stamp, BODY), stamp)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered body", "bad_signature"),
        ("other key", "bad_signature"),
        ("timestamp swapped", "bad_signature"),
        ("signed without the bar", "bad_signature"),
        ("not base64", "bad_signature"),
        ("short signature", "bad_signature"),
        ("missing signature", "missing_signature"),
        ("missing timestamp", "missing_timestamp"),
        ("timestamp not digits", "bad_timestamp"),
        ("timestamp too long", "bad_timestamp"),
        ("timestamp in unicode digits", "bad_timestamp"),
    ],
)
def test_forgeries_are_refused_with_a_reason(
    key: Ed25519PrivateKey, verifier: TelnyxWebhookVerifier, case: str, reason: str
) -> None:
    stamp = str(NOW)
    body = BODY
    signature: str | None = sign(key, stamp, BODY)
    timestamp: str | None = stamp
    if case == "tampered body":
        body = BODY.replace(b"%2B353", b"%2B999")
    elif case == "other key":
        signature = sign(Ed25519PrivateKey.generate(), stamp, BODY)
    elif case == "timestamp swapped":
        timestamp = str(NOW + 1)  # a replay with a fresh timestamp header
    elif case == "signed without the bar":
        signature = base64.b64encode(key.sign(stamp.encode() + BODY)).decode()
    elif case == "not base64":
        signature = "!!not base64!!"
    elif case == "short signature":
        signature = base64.b64encode(b"\x00" * 32).decode()
    elif case == "missing signature":
        signature = None
    elif case == "missing timestamp":
        timestamp = ""
    elif case == "timestamp not digits":
        timestamp = "17650000a0"
    elif case == "timestamp too long":
        timestamp = "9" * 40
    else:
        timestamp = "١٧٦٥٠٠٠٠٠٠"  # Arabic-Indic digits pass str.isdigit(), not int's ASCII
    with pytest.raises(TelnyxSignatureError) as info:
        verifier.verify(body, signature, timestamp)
    assert info.value.reason == reason
    assert not verifier.is_valid(body, signature, timestamp)


@pytest.mark.parametrize(
    "public_key", ["", "not base64!", base64.b64encode(b"\x01" * 31).decode(), "A" * 88]
)
def test_a_malformed_public_key_is_refused_at_construction(public_key: str) -> None:
    with pytest.raises(ValueError, match="Telnyx public key"):
        TelnyxWebhookVerifier(public_key)


def test_negative_tolerance_is_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="tolerance_s"):
        TelnyxWebhookVerifier(public_b64(key), tolerance_s=-1)
