"""HTTP Basic credentials as Exotel presents them on its stream and applet URL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from realtime_voice.config import SettingsError, load_settings
from realtime_voice.security.basic_auth import BasicAuthResult, check_basic_auth


def header(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_the_right_credentials_are_valid() -> None:
    assert check_basic_auth(header(b"key:tok"), "key", "tok") == BasicAuthResult.VALID
    # The scheme is case-insensitive; a password may itself hold colons.
    assert check_basic_auth(header(b"key:a:b").replace("Basic", "basic"), "key", "a:b") == "valid"


@pytest.mark.parametrize(
    "value",
    [header(b"key:wrong"), header(b"other:tok"), header(b"keytok"), header(b"key:"),
     "Basic !!notbase64", "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Basic "],
)
def test_wrong_or_unreadable_credentials_are_invalid(value: str) -> None:
    assert check_basic_auth(value, "key", "tok") == BasicAuthResult.INVALID


@pytest.mark.parametrize("value", [None, "Bearer abc", ""])
def test_no_basic_credentials_are_absent(value: str | None) -> None:
    assert check_basic_auth(value, "key", "tok") == BasicAuthResult.ABSENT


def test_carrier_settings_are_read_and_half_pairs_refused(tmp_path: Path) -> None:
    settings = load_settings(
        {"EXOTEL_API_KEY": "k", "EXOTEL_API_TOKEN": "secret-token"}, dotenv=None
    )
    assert settings.carriers.exotel_basic_auth == ("k", "secret-token")
    assert "secret-token" not in repr(settings)
    assert load_settings({}, dotenv=None).carriers.exotel_basic_auth is None
    for env in ({"EXOTEL_API_KEY": "k"}, {"PLIVO_AUTH_TOKEN": "t"},
                {"VONAGE_APPLICATION_ID": "app"}, {"TELNYX_API_URL": "ftp://x"}):
        with pytest.raises(SettingsError):
            load_settings(env, dotenv=None)
    key = tmp_path / "private.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n-----END PRIVATE KEY-----\n")
    settings = load_settings(
        {"VONAGE_APPLICATION_ID": "app", "VONAGE_PRIVATE_KEY_FILE": str(key)}, dotenv=None
    )
    assert settings.carriers.vonage_private_key is not None
    assert "PRIVATE" not in repr(settings)
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(SettingsError, match="PEM"):
        load_settings(
            {"VONAGE_APPLICATION_ID": "app", "VONAGE_PRIVATE_KEY_FILE": str(tmp_path / "bad.key")},
            dotenv=None,
        )
