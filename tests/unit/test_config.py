from __future__ import annotations

from pathlib import Path

import pytest

from realtime_voice.config import SettingsError, load_dotenv, load_settings


def test_defaults_follow_the_design() -> None:
    s = load_settings({}, dotenv=None)
    assert (s.http_port, s.media_port) == (8000, 8001)
    assert s.public_media_url == "ws://localhost:8001"
    assert s.websocket_timeout_s == 30.0
    assert s.audio_sample_rate == 16000
    assert s.silence_threshold == 0.01
    assert s.max_errors == 10
    assert s.deepgram_model == "nova-3"
    assert s.deepgram_tts_model == "aura-2-thalia-en"
    assert s.openai_model == "gpt-4o-mini"
    assert s.stt_provider == s.tts_provider == s.llm_provider == "auto"
    assert s.database_url.startswith("sqlite:///")
    # No secret configured: a random one, so tokens are always required.
    assert len(s.stream_secret) >= 32
    assert load_settings({}, dotenv=None).stream_secret != s.stream_secret


def test_public_media_url_follows_media_port() -> None:
    assert load_settings({"VOICE_MEDIA_PORT": "9001"}, dotenv=None).public_media_url == (
        "ws://localhost:9001"
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("VOICE_HTTP_PORT", "eighty", "a TCP port"),
        ("VOICE_MEDIA_PORT", "70000", "a TCP port"),
        ("VOICE_SILENCE_THRESHOLD", "1.5", "between 0 and 1"),
        ("VOICE_WEBSOCKET_TIMEOUT", "-3", "positive number of seconds"),
        ("VOICE_MAX_ERRORS", "0", "positive integer"),
        ("VOICE_AUDIO_SAMPLE_RATE", "44100", "8000 or 16000"),
        ("VOICE_PUBLIC_MEDIA_URL", "http://example.com", "ws:// or wss://"),
        ("STT_PROVIDER", "whisper", "one of auto, deepgram, local"),
        ("DATABASE_URL", "not a url", "SQLAlchemy URL"),
        ("VOICE_TRANSFER_NUMBER", "555-1234", "E.164"),
        ("VOICE_STREAM_SECRET", "short", "at least 16"),
        ("VOICE_LOG_TRANSCRIPTS", "maybe", "true or false"),
        ("VOICE_CONNECTIONS_PER_IP_PER_MINUTE", "-1", "0 turns the limit off"),
        ("VOICE_ALLOWED_ORIGINS", "https://a.example.com/path", "comma-separated origins"),
        ("VOICE_ALLOWED_ORIGINS", "a.example.com", "comma-separated origins"),
        ("VOICE_PRICE_STT_PER_MINUTE", "-0.01", "a price in dollars"),
    ],
)
def test_bad_value_names_variable_and_expected_form(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: value}, dotenv=None)
    message = str(err.value)
    assert name in message
    assert expected in message
    assert "\n" not in message


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nVOICE_HTTP_PORT=9000\nexport VOICE_MAX_CALLS='7'\nVOICE_MEDIA_PORT=\"9002\"\n"
    )
    s = load_settings({"VOICE_HTTP_PORT": "9100"}, dotenv=env_file)
    assert s.http_port == 9100
    assert s.max_calls == 7
    assert s.media_port == 9002


def test_dotenv_bad_line_names_file_and_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("VOICE_HTTP_PORT=9000\nthis is not an assignment\n")
    with pytest.raises(SettingsError, match=r"\.env:2"):
        load_dotenv(env_file)


def test_secrets_are_not_in_repr() -> None:
    s = load_settings(
        {"VOICE_STREAM_SECRET": "s3cret-s3cret-s3cret", "DEEPGRAM_API_KEY": "dg-key-123"},
        dotenv=None,
    )
    assert "s3cret" not in repr(s)
    assert "dg-key-123" not in repr(s)


def test_security_and_cost_settings_are_parsed() -> None:
    settings = load_settings(
        {
            "VOICE_ALLOWED_ORIGINS": "https://Console.example.com/, http://localhost:3000",
            "VOICE_CONNECTIONS_PER_IP_PER_MINUTE": "0",
            "VOICE_TRUST_PROXY_HEADERS": "yes",
            "VOICE_LOG_TRANSCRIPTS": "true",
            "VOICE_PRICE_TELEPHONY_PER_MINUTE": "0.0085",
        },
        dotenv=None,
    )
    assert settings.allowed_origins == ("https://console.example.com", "http://localhost:3000")
    assert settings.connections_per_ip_per_minute == 0
    assert settings.trust_proxy_headers is True
    assert settings.log_transcripts is True
    assert settings.price_telephony_per_minute == 0.0085


SIP_DEVICE = {
    "RC_SIP_DOMAIN": "sip.ringcentral.com",
    "RC_SIP_OUTBOUND_PROXY": "sip10.ringcentral.com:5096",
    "RC_SIP_USERNAME": "16505550100",
    "RC_SIP_PASSWORD": "s3cret",
}


def test_sip_device_settings_are_read_and_the_password_is_hidden() -> None:
    settings = load_settings({**SIP_DEVICE, "RC_SIP_AUTHORIZATION_ID": "802398765",
                              "VOICE_SIP_RTP_PORTS": "20000-20999"}, dotenv=None)
    assert settings.rc_sip_outbound_proxy == ("sip10.ringcentral.com", 5096)
    assert settings.rc_sip_authorization_id == "802398765"
    assert settings.sip_rtp_ports == (20000, 20999)
    assert "s3cret" not in repr(settings)
    assert load_settings({}, dotenv=None).rc_sip_domain is None


@pytest.mark.parametrize(("env", "expected"), [
    ({"RC_SIP_DOMAIN": "sip.ringcentral.com"}, "RC_SIP_OUTBOUND_PROXY, RC_SIP_USERNAME"),
    ({**SIP_DEVICE, "RC_SIP_OUTBOUND_PROXY": "sip10.ringcentral.com"}, "host:port"),
    ({**SIP_DEVICE, "RC_SIP_CA_FILE": "/nonexistent/ca.pem"}, "not a readable file"),
    ({"VOICE_SIP_RTP_PORTS": "30000-20000"}, "UDP port range"),
])
def test_bad_sip_settings_name_the_problem(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError, match=expected):
        load_settings(env, dotenv=None)


def test_a_device_id_needs_the_jwt_app_and_excludes_explicit_credentials() -> None:
    jwt_app = {"RC_CLIENT_ID": "id", "RC_CLIENT_SECRET": "secret", "RC_JWT_TOKEN": "jwt"}
    settings = load_settings({"RC_SIP_DEVICE_ID": "800112233", **jwt_app}, dotenv=None)
    assert settings.rc_sip_device_id == "800112233"
    with pytest.raises(SettingsError, match="needs the JWT app"):
        load_settings({"RC_SIP_DEVICE_ID": "800112233"}, dotenv=None)
    with pytest.raises(SettingsError, match="not both"):
        load_settings({"RC_SIP_DEVICE_ID": "8", **jwt_app, **SIP_DEVICE}, dotenv=None)
