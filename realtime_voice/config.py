"""Settings from the environment (and ``.env`` when present), validated at start-up.

Names are those of the README's "Configuration" table. A bad value raises `SettingsError`
whose message is one line naming the variable and the expected form; the CLI prints it and
exits 2.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar
from urllib.parse import urlparse

from realtime_voice.config_carriers import (
    CarrierSettings,
    CarrierSettingsError,
    read_carrier_settings,
)
from realtime_voice.config_console import (
    ConsoleSettings,
    ConsoleSettingsError,
    read_console_settings,
)

__all__ = ["Settings", "SettingsError", "load_dotenv", "load_settings"]

T = TypeVar("T")


class SettingsError(ValueError):
    """A configuration value is missing or malformed (message: one line, names the variable)."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of the server. Build with `load_settings`; tests may construct directly."""

    http_host: str = "0.0.0.0"
    http_port: int = 8000
    media_host: str = "0.0.0.0"
    media_port: int = 8001
    public_media_url: str = "ws://localhost:8001"
    stream_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    stream_token_ttl_s: float = 60.0
    websocket_timeout_s: float = 30.0
    audio_sample_rate: int = 16000
    silence_threshold: float = 0.01
    max_errors: int = 10
    max_calls: int = 100
    max_message_bytes: int = 65536
    drain_timeout_s: float = 30.0
    barge_in_min_speech_ms: int = 32
    vad_threshold: float = 0.5
    end_of_turn_silence_ms: int = 500
    mark_timeout_s: float = 10.0
    silence_reprompt_s: float = 8.0
    silence_max_reprompts: int = 2
    database_url: str = "sqlite:///./var/realtime_voice.db"
    spool_dir: str = "./var/spool"
    spool_max_bytes: int = 256 * 1024 * 1024
    api_token: str | None = field(default=None, repr=False)
    deepgram_api_key: str | None = field(default=None, repr=False)
    deepgram_model: str = "nova-3"
    deepgram_tts_model: str = "aura-2-thalia-en"
    deepgram_base_url: str | None = None
    deepgram_ws_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    rc_webhook_verification_token: str | None = field(default=None, repr=False)
    rc_server_url: str = "https://platform.ringcentral.com"
    rc_client_id: str | None = None
    rc_client_secret: str | None = field(default=None, repr=False)
    rc_jwt_token: str | None = field(default=None, repr=False)
    # The RingCentral "Existing Phone" device the SIP leg registers as (docs/RINGCENTRAL_SIP.md).
    rc_sip_domain: str | None = None
    rc_sip_outbound_proxy: tuple[str, int] | None = None
    rc_sip_username: str | None = None
    rc_sip_password: str | None = field(default=None, repr=False)
    rc_sip_authorization_id: str | None = None
    rc_sip_ca_file: str | None = None
    rc_sip_device_id: str | None = None
    sip_listen: tuple[str, int] | None = None
    sip_rtp_host: str | None = None
    sip_rtp_ports: tuple[int, int] | None = None
    stt_provider: str = "auto"
    tts_provider: str = "auto"
    llm_provider: str = "auto"
    twilio_auth_token: str | None = field(default=None, repr=False)
    carriers: CarrierSettings = field(default_factory=CarrierSettings)
    """Exotel, Telnyx, Plivo and Vonage credentials (`realtime_voice.config_carriers`)."""
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    """Data directory, operator token file, console sessions, recordings (`config_console`)."""
    public_http_url: str | None = None
    transfer_phone_number: str = "+15555550100"
    flows_dir: str | None = None
    default_flow: str = "restaurant"
    llm_deadline_s: float = 4.0
    llm_history_turns: int = 12
    openai_max_retries: int = 1
    openai_temperature: float = 0.3
    openai_max_tokens: int = 200
    log_level: str = "INFO"
    log_format: str = "text"
    log_transcripts: bool = False
    connections_per_ip_per_minute: int = 300
    connection_burst_per_ip: int = 60
    allowed_origins: tuple[str, ...] = ()
    trust_proxy_headers: bool = False
    price_stt_per_minute: float = 0.0077
    price_tts_per_1k_chars: float = 0.030
    price_llm_input_per_1m_tokens: float = 0.15
    price_llm_output_per_1m_tokens: float = 0.60
    price_telephony_per_minute: float = 0.0


_PROVIDERS = {
    "stt_provider": ("auto", "deepgram", "local"),
    "tts_provider": ("auto", "deepgram", "local"),
    "llm_provider": ("auto", "openai", "rules"),
}


def load_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes.

    Raises:
        SettingsError: a line that is not ``KEY=VALUE``.
    """
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SettingsError(f"{path}:{lineno}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


class _Reader:
    """Reads typed values from a mapping, collecting the variable name into each error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str, parse: Callable[[str], T], default: T, expected: str) -> T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError):
            raise SettingsError(f"{name}={raw!r} is invalid: expected {expected}") from None

    def opt(self, name: str) -> str | None:
        raw = self.env.get(name)
        return raw.strip() if raw and raw.strip() else None


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(raw)
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(raw)
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 < value < 1.0:
        raise ValueError(raw)
    return value


def _ws_url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("ws", "wss") or not parsed.netloc:
        raise ValueError(raw)
    return raw.rstrip("/")


def _http_url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(raw)
    return raw.rstrip("/")


def _db_url(raw: str) -> str:
    if "://" not in raw:
        raise ValueError(raw)
    return raw


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(raw)
        return value

    return parse


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")
) -> Settings:
    """Build `Settings` from the environment, with ``.env`` values as fallbacks.

    Args:
        environ: the environment (default ``os.environ``); real variables win over ``.env``.
        dotenv: a ``.env`` file read if it exists (``None`` to skip).

    Raises:
        SettingsError: one line naming the bad variable and the expected form.
    """
    env: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        env.update(load_dotenv(dotenv))
    env.update(os.environ if environ is None else environ)
    r = _Reader(env)
    d = Settings.__dataclass_fields__

    def default(name: str) -> object:
        f = d[name]
        return f.default

    media_port = r.get("VOICE_MEDIA_PORT", _port, 8001, "a TCP port 1-65535")
    providers = {
        key: r.get(key.upper(), _choice(opts), "auto", "one of " + ", ".join(opts))
        for key, opts in _PROVIDERS.items()
    }
    secret = r.opt("VOICE_STREAM_SECRET")
    if secret is not None and len(secret) < 16:
        raise SettingsError("VOICE_STREAM_SECRET is too short: expected at least 16 characters")
    sip = _sip_settings(r)
    try:
        carriers = read_carrier_settings(r.opt)
    except CarrierSettingsError as exc:
        raise SettingsError(str(exc)) from None
    try:
        console = read_console_settings(r.opt)
    except ConsoleSettingsError as exc:
        raise SettingsError(str(exc)) from None
    log_level = r.get(
        "VOICE_LOG_LEVEL",
        _choice(("debug", "info", "warning", "error")),
        "info",
        "one of debug, info, warning, error",
    ).upper()
    return Settings(
        http_host=r.get("VOICE_HTTP_HOST", str, "0.0.0.0", "a host name or address"),
        http_port=r.get("VOICE_HTTP_PORT", _port, 8000, "a TCP port 1-65535"),
        media_host=r.get("VOICE_MEDIA_HOST", str, "0.0.0.0", "a host name or address"),
        media_port=media_port,
        public_media_url=r.get(
            "VOICE_PUBLIC_MEDIA_URL",
            _ws_url,
            f"ws://localhost:{media_port}",
            "a ws:// or wss:// URL such as wss://voice.example.com",
        ),
        stream_secret=secret or secrets.token_urlsafe(32),
        stream_token_ttl_s=r.get(
            "VOICE_STREAM_TOKEN_TTL", _positive_float, 60.0, "a positive number of seconds"
        ),
        websocket_timeout_s=r.get(
            "VOICE_WEBSOCKET_TIMEOUT", _positive_float, 30.0, "a positive number of seconds"
        ),
        audio_sample_rate=r.get(
            "VOICE_AUDIO_SAMPLE_RATE", _choice_int((8000, 16000)), 16000, "8000 or 16000"
        ),
        silence_threshold=r.get(
            "VOICE_SILENCE_THRESHOLD", _fraction, 0.01, "a number between 0 and 1, e.g. 0.01"
        ),
        max_errors=r.get("VOICE_MAX_ERRORS", _positive_int, 10, "a positive integer"),
        max_calls=r.get("VOICE_MAX_CALLS", _positive_int, 100, "a positive integer"),
        max_message_bytes=r.get(
            "VOICE_MAX_MESSAGE_BYTES", _positive_int, 65536, "a positive number of bytes"
        ),
        drain_timeout_s=r.get(
            "VOICE_DRAIN_TIMEOUT", _positive_float, 30.0, "a positive number of seconds"
        ),
        barge_in_min_speech_ms=r.get(
            "VOICE_BARGE_IN_MIN_SPEECH_MS", _positive_int, 32, "a positive number of milliseconds"
        ),
        vad_threshold=r.get("VOICE_VAD_THRESHOLD", _fraction, 0.5, "a number between 0 and 1"),
        end_of_turn_silence_ms=r.get(
            "VOICE_END_OF_TURN_SILENCE_MS", _positive_int, 500, "a positive number of milliseconds"
        ),
        mark_timeout_s=r.get(
            "VOICE_MARK_TIMEOUT", _positive_float, 10.0, "a positive number of seconds"
        ),
        silence_reprompt_s=r.get(
            "VOICE_SILENCE_REPROMPT_S", _positive_float, 8.0, "a positive number of seconds"
        ),
        silence_max_reprompts=r.get(
            "VOICE_SILENCE_MAX_REPROMPTS", int, 2, "a whole number of re-prompts (0 or more)"
        ),
        database_url=r.get(
            "DATABASE_URL",
            _db_url,
            str(default("database_url")),
            "an SQLAlchemy URL such as postgresql+psycopg://user@host/db",
        ),
        spool_dir=r.get("VOICE_SPOOL_DIR", str, "./var/spool", "a directory path"),
        spool_max_bytes=r.get(
            "VOICE_SPOOL_MAX_BYTES", _positive_int, 256 * 1024 * 1024, "a positive number of bytes"
        ),
        api_token=r.opt("VOICE_API_TOKEN"),
        deepgram_api_key=r.opt("DEEPGRAM_API_KEY"),
        deepgram_model=r.get("DEEPGRAM_MODEL", str, "nova-3", "a Deepgram model name"),
        deepgram_tts_model=r.get(
            "DEEPGRAM_TTS_MODEL", str, "aura-2-thalia-en", "a Deepgram Aura voice name"
        ),
        deepgram_base_url=r.get("DEEPGRAM_BASE_URL", _http_url, None, "an http(s):// URL"),
        deepgram_ws_url=r.get("DEEPGRAM_WS_URL", _ws_url, None, "a ws:// or wss:// URL"),
        openai_api_key=r.opt("OPENAI_API_KEY"),
        openai_base_url=r.get("OPENAI_BASE_URL", _http_url, None, "an http(s):// URL"),
        openai_model=r.get("OPENAI_MODEL", str, "gpt-4o-mini", "a chat model name"),
        rc_webhook_verification_token=r.opt("RC_WEBHOOK_VERIFICATION_TOKEN"),
        rc_server_url=r.get(
            "RC_SERVER_URL", _http_url, "https://platform.ringcentral.com", "an http(s):// URL"
        ),
        rc_client_id=r.opt("RC_CLIENT_ID"),
        rc_client_secret=r.opt("RC_CLIENT_SECRET"),
        rc_jwt_token=r.opt("RC_JWT_TOKEN"),
        rc_sip_domain=sip.rc_sip_domain,
        rc_sip_outbound_proxy=sip.rc_sip_outbound_proxy,
        rc_sip_username=sip.rc_sip_username,
        rc_sip_password=sip.rc_sip_password,
        rc_sip_authorization_id=sip.rc_sip_authorization_id,
        rc_sip_ca_file=sip.rc_sip_ca_file,
        rc_sip_device_id=sip.rc_sip_device_id,
        sip_listen=sip.sip_listen,
        sip_rtp_host=sip.sip_rtp_host,
        sip_rtp_ports=sip.sip_rtp_ports,
        twilio_auth_token=r.opt("TWILIO_AUTH_TOKEN"),
        carriers=carriers,
        console=console,
        public_http_url=r.get(
            "VOICE_PUBLIC_HTTP_URL",
            _http_url,
            None,
            "an http(s):// URL such as https://voice.example.com",
        ),
        transfer_phone_number=r.get(
            "VOICE_TRANSFER_NUMBER", _e164, "+15555550100", "an E.164 number such as +15555550100"
        ),
        flows_dir=r.get("VOICE_FLOWS_DIR", str, None, "a directory of flow JSON files"),
        default_flow=r.get("VOICE_DEFAULT_FLOW", str, "restaurant", "a flow name"),
        llm_deadline_s=r.get(
            "VOICE_LLM_DEADLINE_S", _positive_float, 4.0, "a positive number of seconds"
        ),
        llm_history_turns=r.get("VOICE_LLM_HISTORY_TURNS", _positive_int, 12, "a positive integer"),
        openai_max_retries=r.get("OPENAI_MAX_RETRIES", _choice_int((0, 1, 2)), 1, "0, 1 or 2"),
        openai_temperature=r.get("OPENAI_TEMPERATURE", float, 0.3, "a number such as 0.3"),
        openai_max_tokens=r.get("OPENAI_MAX_TOKENS", _positive_int, 200, "a positive integer"),
        log_level=log_level,
        log_format=r.get("VOICE_LOG_FORMAT", _choice(("text", "json")), "text", "text or json"),
        log_transcripts=r.get("VOICE_LOG_TRANSCRIPTS", _bool, False, "true or false"),
        connections_per_ip_per_minute=r.get(
            "VOICE_CONNECTIONS_PER_IP_PER_MINUTE",
            _non_negative_int,
            300,
            "a whole number of connections per minute (0 turns the limit off)",
        ),
        connection_burst_per_ip=r.get(
            "VOICE_CONNECTION_BURST_PER_IP", _positive_int, 60, "a positive integer"
        ),
        allowed_origins=r.get(
            "VOICE_ALLOWED_ORIGINS",
            _origins,
            (),
            "comma-separated origins such as https://console.example.com",
        ),
        trust_proxy_headers=r.get("VOICE_TRUST_PROXY_HEADERS", _bool, False, "true or false"),
        price_stt_per_minute=r.get(
            "VOICE_PRICE_STT_PER_MINUTE", _price, 0.0077, "a price in dollars, e.g. 0.0077"
        ),
        price_tts_per_1k_chars=r.get(
            "VOICE_PRICE_TTS_PER_1K_CHARS", _price, 0.030, "a price in dollars, e.g. 0.030"
        ),
        price_llm_input_per_1m_tokens=r.get(
            "VOICE_PRICE_LLM_INPUT_PER_1M_TOKENS", _price, 0.15, "a price in dollars, e.g. 0.15"
        ),
        price_llm_output_per_1m_tokens=r.get(
            "VOICE_PRICE_LLM_OUTPUT_PER_1M_TOKENS", _price, 0.60, "a price in dollars, e.g. 0.60"
        ),
        price_telephony_per_minute=r.get(
            "VOICE_PRICE_TELEPHONY_PER_MINUTE", _price, 0.0, "a price in dollars, e.g. 0.0085"
        ),
        **providers,
    )


class _SipSettings(NamedTuple):
    rc_sip_domain: str | None
    rc_sip_outbound_proxy: tuple[str, int] | None
    rc_sip_username: str | None
    rc_sip_password: str | None
    rc_sip_authorization_id: str | None
    rc_sip_ca_file: str | None
    rc_sip_device_id: str | None
    sip_listen: tuple[str, int] | None
    sip_rtp_host: str | None
    sip_rtp_ports: tuple[int, int] | None


def _sip_settings(r: _Reader) -> _SipSettings:
    """The SIP leg's settings; a device needs domain, proxy, username and password."""
    values = _SipSettings(
        rc_sip_domain=r.opt("RC_SIP_DOMAIN"),
        rc_sip_outbound_proxy=r.get("RC_SIP_OUTBOUND_PROXY", _host_port, None,
                                       "host:port such as sip10.ringcentral.com:5096"),
        rc_sip_username=r.opt("RC_SIP_USERNAME"),
        rc_sip_password=r.opt("RC_SIP_PASSWORD"),
        rc_sip_authorization_id=r.opt("RC_SIP_AUTHORIZATION_ID"),
        rc_sip_ca_file=r.opt("RC_SIP_CA_FILE"),
        rc_sip_device_id=r.opt("RC_SIP_DEVICE_ID"),
        sip_listen=r.get("VOICE_SIP_LISTEN", _host_port, None, "host:port such as 0.0.0.0:5060"),
        sip_rtp_host=r.opt("VOICE_SIP_RTP_HOST"),
        sip_rtp_ports=r.get("VOICE_SIP_RTP_PORTS", _port_range, None,
                               "a UDP port range such as 20000-20999"),
    )
    required = ("RC_SIP_DOMAIN", "RC_SIP_OUTBOUND_PROXY", "RC_SIP_USERNAME", "RC_SIP_PASSWORD")
    given = [name for name in required if getattr(values, name.lower()) is not None]
    if given and len(given) != len(required):
        missing = ", ".join(name for name in required if name not in given)
        raise SettingsError(f"the SIP device is half configured: {missing} missing "
                            "(set all of RC_SIP_DOMAIN, RC_SIP_OUTBOUND_PROXY, RC_SIP_USERNAME "
                            "and RC_SIP_PASSWORD, or none)")
    if values.rc_sip_device_id is not None and given:
        raise SettingsError("set either RC_SIP_DEVICE_ID (credentials read from RingCentral) "
                            "or RC_SIP_DOMAIN/RC_SIP_OUTBOUND_PROXY/RC_SIP_USERNAME/"
                            "RC_SIP_PASSWORD, not both")
    if values.rc_sip_device_id is not None and not all(
            r.opt(name) for name in ("RC_CLIENT_ID", "RC_CLIENT_SECRET", "RC_JWT_TOKEN")):
        raise SettingsError("RC_SIP_DEVICE_ID needs the JWT app: RC_CLIENT_ID, "
                            "RC_CLIENT_SECRET and RC_JWT_TOKEN")
    ca_file = values.rc_sip_ca_file
    if ca_file is not None and not Path(ca_file).is_file():
        raise SettingsError(f"RC_SIP_CA_FILE={ca_file!r} is not a readable file")
    return values


def _host_port(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(raw)
    return host.strip("[]"), _port(port)


def _port_range(raw: str) -> tuple[int, int]:
    low, sep, high = raw.partition("-")
    first, last = _port(low.strip()), _port(high.strip()) if sep else _port(low.strip())
    if last < first:
        raise ValueError(raw)
    return first, last


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _price(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value < float("inf"):
        raise ValueError(raw)
    return value


def _origins(raw: str) -> tuple[str, ...]:
    # An origin is scheme://host[:port] with no path; browsers send exactly that form.
    origins = []
    for part in raw.split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        parsed = urlparse(origin)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path:
            raise ValueError(raw)
        origins.append(origin.lower())
    return tuple(origins)


def _choice_int(options: tuple[int, ...]) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value not in options:
            raise ValueError(raw)
        return value

    return parse


def _e164(raw: str) -> str:
    if not (raw.startswith("+") and raw[1:].isdigit() and 8 <= len(raw) <= 16):
        raise ValueError(raw)
    return raw
