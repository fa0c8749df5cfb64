"""The carriers' settings: Exotel, Telnyx, Plivo and Vonage credentials.

Each carrier is optional and off until configured. A credential does two jobs: it lets
us check that a webhook or stream really comes from the carrier (Exotel's Basic auth,
Telnyx's Ed25519 signature, Plivo's V3 signature, Vonage's signed JWT), and it lets us
call the carrier's REST API to transfer or hang up a call. Without one, the carrier's
answer webhook still works (as Twilio's does without ``TWILIO_AUTH_TOKEN``) and the
single-use stream token is what protects the media path; docs/SECURITY.md says which
setting closes which door.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["CarrierSettings", "CarrierSettingsError", "read_carrier_settings"]


class CarrierSettingsError(ValueError):
    """A carrier is half configured or a value is malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class CarrierSettings:
    """Credentials and API endpoints of the four stream carriers (all optional).

    Attributes:
        exotel_api_key: ``EXOTEL_API_KEY``: the user name Exotel presents (Basic auth)
            when the Voicebot applet's URL is ``wss://KEY:TOKEN@host/...``.
        exotel_api_token: ``EXOTEL_API_TOKEN``: its password.
        telnyx_public_key: ``TELNYX_PUBLIC_KEY``: base64 Ed25519 key that verifies
            Telnyx's webhook signatures.
        telnyx_api_key: ``TELNYX_API_KEY``: Bearer key for Call Control (transfer, hang-up).
        telnyx_api_url: ``TELNYX_API_URL``: Call Control's base URL.
        plivo_auth_id: ``PLIVO_AUTH_ID``: the account's auth id (REST paths, Basic auth).
        plivo_auth_token: ``PLIVO_AUTH_TOKEN``: its auth token (signatures, Basic auth).
        plivo_api_url: ``PLIVO_API_URL``: the REST API's base URL.
        vonage_signature_secret: ``VONAGE_SIGNATURE_SECRET``: verifies signed webhooks.
        vonage_application_id: ``VONAGE_APPLICATION_ID``: the Voice application.
        vonage_private_key: the PEM text read from ``VONAGE_PRIVATE_KEY_FILE``: signs the
            application JWTs the Voice API takes.
        vonage_api_url: ``VONAGE_API_URL``: the Voice API's base URL.
    """

    exotel_api_key: str | None = None
    exotel_api_token: str | None = field(default=None, repr=False)
    telnyx_public_key: str | None = None
    telnyx_api_key: str | None = field(default=None, repr=False)
    telnyx_api_url: str = "https://api.telnyx.com"
    plivo_auth_id: str | None = None
    plivo_auth_token: str | None = field(default=None, repr=False)
    plivo_api_url: str = "https://api.plivo.com"
    vonage_signature_secret: str | None = field(default=None, repr=False)
    vonage_application_id: str | None = None
    vonage_private_key: str | None = field(default=None, repr=False)
    vonage_api_url: str = "https://api.nexmo.com"

    @property
    def exotel_basic_auth(self) -> tuple[str, str] | None:
        """``(key, token)`` when Exotel's Basic-auth credentials are configured."""
        if self.exotel_api_key is None or self.exotel_api_token is None:
            return None
        return self.exotel_api_key, self.exotel_api_token


def read_carrier_settings(opt: Callable[[str], str | None]) -> CarrierSettings:
    """Read the carriers' settings.

    Args:
        opt: the environment reader: a variable's stripped value, or ``None`` when unset.

    Raises:
        CarrierSettingsError: a pair set by half, a malformed URL, an unreadable key file.
    """
    _pair(opt, "EXOTEL_API_KEY", "EXOTEL_API_TOKEN")
    _pair(opt, "PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN")
    _pair(opt, "VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY_FILE")
    key_file = opt("VONAGE_PRIVATE_KEY_FILE")
    private_key = None
    if key_file is not None:
        try:
            private_key = Path(key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise CarrierSettingsError(
                f"VONAGE_PRIVATE_KEY_FILE={key_file!r} is not a readable PEM file: {exc}"
            ) from None
        if "PRIVATE KEY" not in private_key:
            raise CarrierSettingsError(
                f"VONAGE_PRIVATE_KEY_FILE={key_file!r} holds no PEM private key"
            )
    return CarrierSettings(
        exotel_api_key=opt("EXOTEL_API_KEY"),
        exotel_api_token=opt("EXOTEL_API_TOKEN"),
        telnyx_public_key=opt("TELNYX_PUBLIC_KEY"),
        telnyx_api_key=opt("TELNYX_API_KEY"),
        telnyx_api_url=_url(opt, "TELNYX_API_URL", "https://api.telnyx.com"),
        plivo_auth_id=opt("PLIVO_AUTH_ID"),
        plivo_auth_token=opt("PLIVO_AUTH_TOKEN"),
        plivo_api_url=_url(opt, "PLIVO_API_URL", "https://api.plivo.com"),
        vonage_signature_secret=opt("VONAGE_SIGNATURE_SECRET"),
        vonage_application_id=opt("VONAGE_APPLICATION_ID"),
        vonage_private_key=private_key,
        vonage_api_url=_url(opt, "VONAGE_API_URL", "https://api.nexmo.com"),
    )


def _pair(opt: Callable[[str], str | None], first: str, second: str) -> None:
    if (opt(first) is None) != (opt(second) is None):
        missing = second if opt(second) is None else first
        raise CarrierSettingsError(f"{missing} is missing: set both {first} and {second}, or none")


def _url(opt: Callable[[str], str | None], name: str, default: str) -> str:
    raw = opt(name)
    if raw is None:
        return default
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CarrierSettingsError(f"{name}={raw!r} is invalid: expected an http(s):// URL")
    return raw.rstrip("/")
