"""``POST /api/voice/test?text=...``: a preview of the configured voice, as a WAV.

Operators use it to hear a voice (``voice=``) or a phrase before callers do. The route
path keeps its historical name, which outside clients rely on (docs/SECURITY.md).
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import Callable

from aiohttp import web

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.providers.base import TextToSpeech, TtsError
from webhooks.errors import json_error

__all__ = ["MAX_TEXT_CHARS", "add_tts_preview_route"]

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 500
_FORMAT = AudioFormat(AudioEncoding.PCM16, 16000, 1)


def add_tts_preview_route(app: web.Application, make_tts: Callable[..., TextToSpeech]) -> None:
    """Register the route; ``make_tts`` is the engines' synthesiser factory."""

    async def handle(request: web.Request) -> web.Response:
        text = request.query.get("text", "").strip()
        voice = request.query.get("voice") or None
        if not text:
            return json_error(400, "missing query parameter text", parameter="text")
        if len(text) > MAX_TEXT_CHARS:
            return json_error(400, f"text over {MAX_TEXT_CHARS} characters", parameter="text")
        pcm = bytearray()
        try:
            async for chunk in make_tts(_FORMAT, voice).synthesize(text):
                pcm += chunk
        except TtsError as exc:
            log.error("TTS preview failed: %s", exc)
            return json_error(502, f"speech synthesis failed: {exc}")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(_FORMAT.sample_rate)
            wav.writeframes(bytes(pcm))
        return web.Response(body=buffer.getvalue(), content_type="audio/wav")

    app.router.add_post("/api/voice/test", handle)
