from __future__ import annotations

import pytest

from realtime_voice.security.tokens import StreamTokenIssuer, TokenError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_token_verifies_once_for_its_call() -> None:
    issuer = StreamTokenIssuer("x" * 32, ttl_s=60)
    token = issuer.mint("call-1")
    issuer.verify(token, "call-1")
    with pytest.raises(TokenError) as err:
        issuer.verify(token, "call-1")
    assert err.value.reason == "reused"


def test_token_bound_to_call_id() -> None:
    issuer = StreamTokenIssuer("x" * 32)
    token = issuer.mint("call-1")
    with pytest.raises(TokenError) as err:
        issuer.verify(token, "call-2")
    assert err.value.reason == "bad_signature"
    # A failed attempt for another call does not burn the token.
    issuer.verify(token, "call-1")


def test_token_expires() -> None:
    clock = Clock()
    issuer = StreamTokenIssuer("x" * 32, ttl_s=60, clock=clock)
    token = issuer.mint("call-1")
    clock.now += 61
    with pytest.raises(TokenError) as err:
        issuer.verify(token, "call-1")
    assert err.value.reason == "expired"


def test_token_from_another_secret_is_refused() -> None:
    token = StreamTokenIssuer("a" * 32).mint("call-1")
    with pytest.raises(TokenError) as err:
        StreamTokenIssuer("b" * 32).verify(token, "call-1")
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize("token", ["", "abc", "1.2", "x.y.z", "123..sig", "123.nonce."])
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(TokenError) as err:
        StreamTokenIssuer("x" * 32).verify(token, "call-1")
    assert err.value.reason == "malformed"


def test_tampered_expiry_is_refused() -> None:
    issuer = StreamTokenIssuer("x" * 32, ttl_s=60)
    expiry, nonce, sig = issuer.mint("call-1").split(".")
    with pytest.raises(TokenError) as err:
        issuer.verify(f"{int(expiry) + 3600}.{nonce}.{sig}", "call-1")
    assert err.value.reason == "bad_signature"


def test_used_tokens_are_forgotten_after_expiry() -> None:
    clock = Clock()
    issuer = StreamTokenIssuer("x" * 32, ttl_s=60, clock=clock)
    for i in range(100):
        issuer.verify(issuer.mint(f"call-{i}"), f"call-{i}")
    clock.now += 120
    issuer.verify(issuer.mint("late"), "late")
    assert len(issuer._used) == 1
