"""The Deepgram simulator's Aura REST endpoint: ``POST /v1/speak``, audio from the offline TTS.

The request is the real one (``?model=…&encoding=…&sample_rate=…&container=…`` with a
JSON body ``{"text": …}``); the answer streams raw audio in the requested encoding as
the offline synthesizer produces it, with Deepgram's ``dg-*`` headers. Fault knobs
delay the first byte, answer with an error status, pace the audio in real time or cut
the connection part-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from ai_pipeline.text_split import split_sentences
from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.providers.local_tts import LocalTextToSpeech, SpeechSynthesizer
from realtime_voice.testing.deepgram_sim_listen import SessionHost
from realtime_voice.testing.deepgram_sim_messages import MODEL_UUID
from realtime_voice.testing.deepgram_sim_query import QueryError

__all__ = ["SpeakQuery", "SpeechCache", "handle_speak"]

log = logging.getLogger(__name__)

_MAX_CHARS: Final = 2000  # Aura's limit per request
_ENCODINGS: Final = {
    "linear16": AudioEncoding.PCM16,
    "mulaw": AudioEncoding.MULAW,
    "alaw": AudioEncoding.ALAW,
}
_CONTENT_TYPES: Final = {
    AudioEncoding.PCM16: "audio/l16",
    AudioEncoding.MULAW: "audio/basic",
    AudioEncoding.ALAW: "audio/x-alaw-basic",
}
_WAV_TAGS: Final = {AudioEncoding.PCM16: 1, AudioEncoding.ALAW: 6, AudioEncoding.MULAW: 7}


@dataclass(frozen=True, slots=True)
class SpeakQuery:
    """The options of one Aura request, validated."""

    model: str
    audio_format: AudioFormat
    container: str

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> SpeakQuery:
        """Validate ``/v1/speak`` query parameters.

        Raises:
            QueryError: an unsupported encoding, rate or container.
        """
        model = query.get("model", "aura-asteria-en")
        encoding_name = query.get("encoding", "linear16").lower()
        encoding = _ENCODINGS.get(encoding_name)
        if encoding is None:
            raise QueryError(
                f"encoding={encoding_name!r}: the simulator speaks linear16, mulaw or alaw"
            )
        raw_rate = query.get("sample_rate", "8000" if encoding is not AudioEncoding.PCM16 else "")
        try:
            rate = int(float(raw_rate)) if raw_rate else 16000
        except ValueError:
            raise QueryError(f"sample_rate={raw_rate!r}: expected a number") from None
        if rate not in (8000, 16000):
            raise QueryError(f"sample_rate={rate}: the simulator speaks 8000 or 16000 Hz")
        container = query.get("container", "wav").lower()
        if container not in ("none", "wav"):
            raise QueryError(f"container={container!r}: expected none or wav")
        return cls(model, AudioFormat(encoding, rate, 1), container)


class SpeechCache:
    """Synthesized audio per (text, format), least recently used dropped first.

    A load test repeats a few sentences thousands of times; the offline voice would
    otherwise cost the simulator more CPU than the server spends on the whole call.

    Args:
        max_entries: how many distinct answers to keep.
    """

    def __init__(self, max_entries: int = 512) -> None:
        self._max = max_entries
        self._audio: OrderedDict[tuple[str, AudioFormat], tuple[bytes, ...]] = OrderedDict()

    def get(self, text: str, fmt: AudioFormat) -> tuple[bytes, ...] | None:
        """The chunks synthesized for ``text`` in ``fmt`` before, if kept."""
        chunks = self._audio.get((text, fmt))
        if chunks is not None:
            self._audio.move_to_end((text, fmt))
        return chunks

    def put(self, text: str, fmt: AudioFormat, chunks: tuple[bytes, ...]) -> None:
        """Keep a complete synthesis."""
        self._audio[(text, fmt)] = chunks
        self._audio.move_to_end((text, fmt))
        while len(self._audio) > self._max:
            self._audio.popitem(last=False)


async def _synthesize(
    text: str, fmt: AudioFormat, synthesizer: SpeechSynthesizer | None, cache: SpeechCache | None
) -> AsyncGenerator[bytes, None]:
    """The offline voice's chunks for ``text``, from the cache when it has them."""
    cached = cache.get(text, fmt) if cache is not None else None
    if cached is not None:
        for chunk in cached:
            yield chunk
        return
    tts = LocalTextToSpeech(fmt, synthesizer, split_text=split_sentences)
    made: list[bytes] = []
    async with contextlib.aclosing(tts.synthesize(text)) as chunks:
        async for chunk in chunks:
            made.append(chunk)
            yield chunk
    if cache is not None:
        cache.put(text, fmt, tuple(made))


def _wav_header(fmt: AudioFormat) -> bytes:
    """A WAV header for a stream of unknown length (sizes set to the maximum)."""
    width = fmt.encoding.bytes_per_sample
    unknown = 0xFFFFFFFF
    fmt_chunk = struct.pack(
        "<HHIIHH",
        _WAV_TAGS[fmt.encoding],
        1,
        fmt.sample_rate,
        fmt.sample_rate * width,
        width,
        8 * width,
    )
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
        + b"data" + struct.pack("<I", unknown)
    )  # fmt: skip


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}
    return web.json_response(body, status=status)


async def handle_speak(
    request: web.Request,
    host: SessionHost,
    synthesizer: SpeechSynthesizer | None,
    cache: SpeechCache | None = None,
) -> web.StreamResponse:
    """Answer one ``POST /v1/speak`` (authentication already checked).

    Args:
        request: the request.
        host: the simulator (fault knobs, counters).
        synthesizer: the offline voice; None: the default one (loaded on first use).
        cache: replay audio synthesized before for the same text and format.
    """
    faults: Any = host.faults
    stats: Any = host.stats
    stats.speak_requests += 1
    host.changed()
    fail = faults.speak_fail_status
    if fail is not None and (
        faults.speak_fail_count is None or stats.speak_failed < faults.speak_fail_count
    ):
        stats.speak_failed += 1
        host.changed()
        return _error(
            fail, "INTERNAL_SERVER_ERROR" if fail >= 500 else "REQUEST_FAILED", "simulated failure"
        )
    try:
        query = SpeakQuery.parse({k: request.query[k] for k in request.query})
        body = json.loads(await request.read() or b"{}")
    except QueryError as exc:
        return _error(400, "Bad Request", str(exc))
    except ValueError:
        return _error(400, "Bad Request", 'the body must be JSON: {"text": "..."}')
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return _error(400, "Bad Request", "text is required")
    if len(text) > _MAX_CHARS:
        return _error(413, "PAYLOAD_TOO_LARGE", f"text is longer than {_MAX_CHARS} characters")
    stats.last_speak_query = dict(request.query)
    fmt = query.audio_format
    response = web.StreamResponse(
        headers={
            "content-type": "audio/wav"
            if query.container == "wav"
            else _CONTENT_TYPES[fmt.encoding],
            "dg-request-id": str(uuid.uuid4()),
            "dg-model-name": query.model,
            "dg-model-uuid": MODEL_UUID,
            "dg-char-count": str(len(text)),
        }
    )
    if faults.speak_first_byte_delay_ms:
        await asyncio.sleep(faults.speak_first_byte_delay_ms / 1000.0)
    sent = 0
    try:
        await response.prepare(request)
        if query.container == "wav":
            await response.write(_wav_header(fmt))
        limit = faults.speak_abort_after_bytes
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Aura streams small pieces as it goes; so does the simulator (100 ms each), which
        # also lets a client that hung up be noticed at the next piece.
        piece = fmt.sample_rate // 10 * fmt.encoding.bytes_per_sample
        async with contextlib.aclosing(_synthesize(text, fmt, synthesizer, cache)) as chunks:
            async for chunk in chunks:
                for at in range(0, len(chunk), piece):
                    part = chunk[at : at + piece]
                    if limit is not None and sent + len(part) >= limit:
                        await response.write(part[: max(limit - sent, 0)])
                        stats.speak_cut += 1
                        host.changed()
                        if request.transport is not None:
                            request.transport.abort()
                        return response
                    await response.write(part)
                    sent += len(part)
                    if faults.speak_realtime:
                        ahead = started + fmt.bytes_to_seconds(sent) - loop.time()
                        if ahead > 0:
                            await asyncio.sleep(ahead)
        await response.write_eof()
    except ConnectionError:
        stats.speak_aborted += 1
        host.changed()
        log.debug("Aura client went away after %d bytes", sent)
        return response
    except asyncio.CancelledError:
        stats.speak_aborted += 1
        host.changed()
        raise
    stats.speak_completed += 1
    host.changed()
    return response
