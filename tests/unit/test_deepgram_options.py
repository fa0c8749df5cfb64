"""Deepgram STT options: validation, the query they produce, mu-law passthrough."""

from __future__ import annotations

import pytest

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.providers.deepgram_options import DeepgramSttOptions, ReconnectPolicy


def test_defaults_are_the_documented_conversational_settings() -> None:
    assert DeepgramSttOptions().connect_kwargs() == {
        "model": "nova-3",
        "language": "en-US",
        "encoding": "linear16",
        "sample_rate": 16000,
        "channels": 1,
        "interim_results": True,
        "endpointing": 300,
        "utterance_end_ms": 1000,
        "vad_events": True,
        "smart_format": True,
        "punctuate": True,
    }


def test_keyterms_and_disabled_options() -> None:
    options = DeepgramSttOptions(
        keyterms=("Bella Vista", "tiramisu"), endpointing=False, utterance_end_ms=None
    )
    kwargs = options.connect_kwargs()
    assert kwargs["keyterm"] == ["Bella Vista", "tiramisu"]
    assert kwargs["endpointing"] is False
    assert "utterance_end_ms" not in kwargs


def test_passthrough_sends_the_call_codec() -> None:
    options = DeepgramSttOptions(keyterms=("pasta",)).for_passthrough(AudioFormat())
    assert (options.encoding, options.sample_rate, options.keyterms) == ("mulaw", 8000, ("pasta",))
    assert options.wire_format == AudioFormat(AudioEncoding.MULAW, 8000, 1)
    assert options.bytes_per_second == 8000
    alaw = DeepgramSttOptions().for_passthrough(AudioFormat(AudioEncoding.ALAW, 8000, 1))
    assert alaw.encoding == "alaw"
    with pytest.raises(ValueError, match="cannot pass"):
        DeepgramSttOptions().for_passthrough(AudioFormat(AudioEncoding.PCM16, 16000, 1))


def test_a_call_is_passed_through_when_its_format_allows() -> None:
    options = DeepgramSttOptions(model="nova-3")
    assert options.for_call(AudioFormat()).encoding == "mulaw"
    assert options.for_call(AudioFormat(AudioEncoding.ALAW, 8000, 1)).encoding == "alaw"
    # PCM, 16 kHz or stereo calls are converted to the configured encoding instead.
    for wire in (
        AudioFormat(AudioEncoding.PCM16, 8000, 1),
        AudioFormat(AudioEncoding.MULAW, 16000, 1),
        AudioFormat(AudioEncoding.MULAW, 8000, 2),
    ):
        assert options.for_call(wire) == options


@pytest.mark.parametrize(
    "kwargs",
    [
        {"encoding": "opus"},
        {"encoding": "mulaw", "sample_rate": 16000},
        {"sample_rate": 44100},
        {"endpointing": 5},
        {"utterance_end_ms": 1000, "interim_results": False},
        {"keyterms": ("ok", " ")},
        {"model": " "},
    ],
)
def test_bad_options_fail_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DeepgramSttOptions(**kwargs)  # type: ignore[arg-type]


def test_reconnect_policy_validation() -> None:
    assert ReconnectPolicy().max_attempts == 5
    with pytest.raises(ValueError):
        ReconnectPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        ReconnectPolicy(max_stalls=0)
    with pytest.raises(ValueError):
        ReconnectPolicy(max_wait_s=0)
