"""Write the callers' utterance files in ``loadtests/audio`` from the offline TTS.

Each line of `locust_voice.fixtures.UTTERANCES` is synthesized with piper through the
project's own `caller_audio` (8 kHz mu-law, leading and trailing silence trimmed, so the
end of the file is the end of speech) and written as ``loadtests/audio/<name>.ulaw``.

Run: ``python loadtests/make_caller_audio.py`` (needs the ``offline`` extra).
"""

from __future__ import annotations

import asyncio

from locust_voice.fixtures import UTTERANCES, audio_path

from realtime_voice.testing.speech import caller_audio


async def _write_all() -> None:
    for name, text in UTTERANCES.items():
        audio = await caller_audio(text)
        path = audio_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(audio)
        print(f"{path}: {len(audio) / 8000:.2f} s, {len(audio)} bytes  ({text})")


def main() -> None:
    """Synthesize and write every utterance."""
    asyncio.run(_write_all())


if __name__ == "__main__":
    main()
