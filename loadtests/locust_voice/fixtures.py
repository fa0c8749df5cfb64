"""The callers' prerecorded utterances: small 8 kHz mu-law files in ``loadtests/audio``.

Each utterance is raw mu-law (G.711, 8000 samples/s, mono, no header: exactly the bytes a
gateway puts on the wire, 160 per 20 ms frame). They were synthesized with the project's
offline TTS (piper, through `realtime_voice.testing.speech.caller_audio`), edges trimmed so
the end of the file is the end of speech; ``python loadtests/make_caller_audio.py`` writes
them again from `UTTERANCES`. Listen to one with ``play -t ul -r 8000 -c 1 FILE``.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["AUDIO_DIR", "FRAME_BYTES", "UTTERANCES", "audio_path", "load_utterance"]

AUDIO_DIR = Path(__file__).resolve().parent.parent / "audio"
"""Where the utterance files live (``loadtests/audio``)."""

FRAME_BYTES = 160
"""One 20 ms frame of mu-law at 8 kHz."""

UTTERANCES: dict[str, str] = {
    "what_time_open": "What time do you open?",
    "book_table": "I'd like to book a table for four tomorrow at seven.",
    "parking": "Do you have parking nearby?",
    "manager": "Can I speak to a manager?",
}
"""Utterance name → what the caller says (lines the default restaurant flow understands)."""


def audio_path(name: str) -> Path:
    """The file of utterance ``name``.

    Raises:
        KeyError: no such utterance.
    """
    if name not in UTTERANCES:
        raise KeyError(f"unknown utterance {name!r}; known: {', '.join(UTTERANCES)}")
    return AUDIO_DIR / f"{name}.ulaw"


@functools.cache
def load_utterance(name: str) -> bytes:
    """The mu-law bytes of utterance ``name`` (read once per process).

    Raises:
        KeyError: no such utterance.
        FileNotFoundError: the file is missing (run ``loadtests/make_caller_audio.py``).
        ValueError: the file is empty.
    """
    data = audio_path(name).read_bytes()
    if not data:
        raise ValueError(f"{audio_path(name)} is empty; run loadtests/make_caller_audio.py")
    return data
