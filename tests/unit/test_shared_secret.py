"""`secret_matches`: the header check behind the Verification-Token and bearer tokens."""

from __future__ import annotations

import pytest

from realtime_voice.security.shared_secret import secret_matches


def test_the_same_secret_matches() -> None:
    assert secret_matches("rc-verify-123", "rc-verify-123")
    assert secret_matches("Bearer tøken", "Bearer tøken")


@pytest.mark.parametrize("given", [None, "", "rc-verify-12", "rc-verify-1234", "RC-VERIFY-123"])
def test_anything_else_does_not(given: str | None) -> None:
    assert not secret_matches(given, "rc-verify-123")


def test_a_header_that_is_not_utf8_is_a_mismatch_not_an_error() -> None:
    # What aiohttp makes of the header bytes b"\xff\xfe".
    assert not secret_matches("\udcff\udcfe", "rc-verify-123")
    assert secret_matches(b"\xff".decode("utf-8", "surrogateescape"), "\udcff")
