"""Plivo's signature V3 and our signed transfer URLs.

The expected signed strings are spelled out by hand from the official SDK's
construction (plivo-python ``plivo/utils/signature_v3.py``: ``construct_get_url``,
``construct_post_url`` and ``get_signature_v3``), so each vector checks one rule of it:
the base without its query, ``?`` and the sorted query, the ``.`` between query and
body, ``namevalue`` body pairs sorted by name, and ``.nonce`` at the end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from realtime_voice.security.plivo_signature import (
    plivo_signature_v3,
    transfer_signature,
    transfer_url,
    verify_plivo_signature_v3,
    verify_transfer,
)

TOKEN = "MzE2YzVhN2QxZmE4YjJlNGQ2YzlmMDFh"
NONCE = "05429567804466091622"
FORM = [("To", "+16505550100"), ("CallUUID", "eba53b9e-8fbd"), ("From", "+14155550123")]


def hmac_b64(message: str, key: str = TOKEN) -> str:
    return base64.b64encode(
        hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    ).decode()


@pytest.mark.parametrize(
    ("method", "url", "params", "signed"),
    [
        # POST with a body and no query: "?" then the sorted namevalue pairs.
        (
            "POST",
            "https://voice.example.com/api/voice/plivo/incoming",
            FORM,
            "https://voice.example.com/api/voice/plivo/incoming?"
            "CallUUIDeba53b9e-8fbdFrom+14155550123To+16505550100",
        ),
        # POST with a query and a body: the sorted query, ".", then the body.
        (
            "POST",
            "https://voice.example.com/answer/?lang=en&b=2&a=1",
            FORM,
            "https://voice.example.com/answer/?a=1&b=2&lang=en."
            "CallUUIDeba53b9e-8fbdFrom+14155550123To+16505550100",
        ),
        # POST with neither: the bare URL.
        ("POST", "https://voice.example.com/answer/", [], "https://voice.example.com/answer/"),
        # POST with a query only: no trailing ".".
        ("POST", "https://h.example/x?z=1", [], "https://h.example/x?z=1"),
        # Repeated names: each name's values sorted.
        ("POST", "https://h.example/x", [("d", "2"), ("d", "1")], "https://h.example/x?d1d2"),
        # GET: the query, decoded and sorted, "&"-joined.
        (
            "GET",
            "https://h.example/answer?To=%2B1650&CallUUID=abc&From=%2B1415",
            [],
            "https://h.example/answer?CallUUID=abc&From=+1415&To=+1650",
        ),
        ("GET", "https://h.example/answer", [], "https://h.example/answer"),
    ],
)
def test_signature_follows_the_sdk_construction(
    method: str, url: str, params: list[tuple[str, str]], signed: str
) -> None:
    expected = hmac_b64(f"{signed}.{NONCE}")
    assert plivo_signature_v3(TOKEN, url, NONCE, params, method=method) == expected
    assert verify_plivo_signature_v3(TOKEN, url, NONCE, expected, params, method=method)


def test_one_of_several_comma_separated_signatures_is_enough() -> None:
    url = "https://voice.example.com/api/voice/plivo/incoming"
    good = plivo_signature_v3(TOKEN, url, NONCE, FORM)
    other = plivo_signature_v3("another-active-token", url, NONCE, FORM)
    assert verify_plivo_signature_v3(TOKEN, url, NONCE, f"{other},{good}", FORM)
    assert verify_plivo_signature_v3(TOKEN, url, NONCE, f"{other}, {good}", FORM)
    assert not verify_plivo_signature_v3(TOKEN, url, NONCE, other, FORM)


@pytest.mark.parametrize(
    "case", ["wrong token", "other nonce", "tampered form", "other url", "empty", "no nonce"]
)
def test_anything_else_fails(case: str) -> None:
    url = "https://voice.example.com/api/voice/plivo/incoming"
    signature = plivo_signature_v3(TOKEN, url, NONCE, FORM)
    token, nonce, form, where = TOKEN, NONCE, list(FORM), url
    if case == "wrong token":
        token = "not-the-token"
    elif case == "other nonce":
        nonce = "1" + NONCE
    elif case == "tampered form":
        form[0] = ("To", "+19995550000")
    elif case == "other url":
        where = url + "?x=1"
    elif case == "empty":
        signature = ""
    else:
        nonce = ""
    assert not verify_plivo_signature_v3(token, where, nonce, signature, form)


def test_the_default_port_may_or_may_not_be_in_the_url() -> None:
    signature = plivo_signature_v3(TOKEN, "https://voice.example.com/in", NONCE, FORM)
    assert verify_plivo_signature_v3(
        TOKEN, "https://voice.example.com:443/in", NONCE, signature, FORM
    )
    assert not verify_plivo_signature_v3(
        TOKEN, "https://voice.example.com:8443/in", NONCE, signature, FORM
    )


# ------------------------------------------------------------- transfer URLs

SECRET = b"k" * 32
CALL = "eba53b9e-8fbd-45c1-9444-696d2172fbc8"


def test_a_transfer_url_carries_a_signature_bound_to_call_number_and_expiry() -> None:
    url = transfer_url(
        "https://voice.example.com/api/voice/plivo/transfer",
        SECRET,
        CALL,
        "+14155550100",
        now=1_000_000,
    )
    sig = transfer_signature(SECRET, CALL, "+14155550100", 1_000_300)
    assert url == (
        "https://voice.example.com/api/voice/plivo/transfer"
        f"?to=%2B14155550100&exp=1000300&sig={sig}"
    )
    assert verify_transfer(SECRET, CALL, "+14155550100", "1000300", sig, now=1_000_299)


@pytest.mark.parametrize(
    ("call", "number", "expiry", "now"),
    [
        ("other-call", "+14155550100", "1000300", 1_000_000),  # another call's URL
        (CALL, "+19005550100", "1000300", 1_000_000),  # a number we did not sign
        (CALL, "+14155550100", "1000301", 1_000_000),  # an expiry pushed out
        (CALL, "+14155550100", "1000300", 1_000_301),  # expired
        (CALL, "+14155550100", "²", 1_000_000),  # not an ASCII number
    ],
)
def test_a_transfer_signature_fails_for_anything_else(
    call: str, number: str, expiry: str, now: float
) -> None:
    sig = transfer_signature(SECRET, CALL, "+14155550100", 1_000_300)
    assert not verify_transfer(SECRET, call, number, expiry, sig, now=now)
    assert not verify_transfer(b"x" * 32, CALL, "+14155550100", "1000300", sig, now=1_000_000)
