"""The environment the process tests and the load-test stack give their children."""

from __future__ import annotations

from realtime_voice.testing.processes import child_environment


def test_server_settings_are_never_inherited_and_the_rest_is() -> None:
    parent = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "VOICE_MAX_CALLS": "3",
        "DEEPGRAM_API_KEY": "a-developer-key",
        "OPENAI_BASE_URL": "http://example.invalid",
        "RC_CLIENT_ID": "x",
        "TWILIO_AUTH_TOKEN": "y",
        "STT_PROVIDER": "deepgram",
        "DATABASE_URL": "postgresql://prod",
    }
    env = child_environment(parent)
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root"
    assert not {k for k in env if k in parent and k not in ("PATH", "HOME")}
    # Loopback children are reached directly and log as they go.
    assert env["NO_PROXY"] == env["no_proxy"] == "127.0.0.1,localhost"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "VOICE_MAX_CALLS" in parent  # the parent's mapping is left alone
