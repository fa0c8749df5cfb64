"""Twilio's request signature against Twilio's own documented example."""

from __future__ import annotations

from realtime_voice.security.twilio_signature import twilio_signature, verify_twilio_signature


def test_signature_matches_twilios_documented_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_twilio_signature("12345", url, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_twilio_signature(
        "12345", with_port, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    assert not verify_twilio_signature("12346", url, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
