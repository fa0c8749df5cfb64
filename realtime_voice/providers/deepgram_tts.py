"""Deepgram Aura text-to-speech in the call's own wire codec, streamed sentence by sentence.

For a mu-law 8 kHz call every request asks for ``encoding=mulaw&sample_rate=8000&
container=none``, so Aura's bytes go to the caller untouched (A-law likewise; PCM16 as
``linear16``). The text is split into sentences like the offline TTS (by the injected
``split_text``), one request per sentence: the first audio leaves after the first
sentence, and the next sentence is requested as soon as the current one has fully
arrived (never more than one ahead, so memory stays within two sentences of audio).

This uses the SDK's asyncio client (REST only) rather than the sync one in a thread:
the response body is an async iterator on the call's own loop, so the TCP stream is the
backpressure (nothing is read before the consumer asks) and cancelling the consumer, or
closing the generator on barge-in, closes the HTTP response right there; a thread would
need a second queue and a cross-thread cancel to do the same. (The SDK's asyncio
*WebSocket* code is the deprecated one; its REST code is plain httpx.)

A request is retried (tenacity, short) only before its first byte; after that a failure
raises `DeepgramTtsError` carrying ``completed_pieces``, so a fallback can speak the
sentences the caller has not heard (`FallbackTextToSpeech`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final, cast

from deepgram import AsyncDeepgramClient
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.providers.base import TextSplitter, whole_text
from realtime_voice.providers.deepgram_errors import DeepgramTtsError, tts_error

__all__ = ["AURA_ENCODINGS", "DeepgramTextToSpeech"]

log = logging.getLogger(__name__)

AURA_ENCODINGS: Final = {
    AudioEncoding.MULAW: "mulaw",
    AudioEncoding.ALAW: "alaw",
    AudioEncoding.PCM16: "linear16",
}
"""Our wire encodings → Aura's ``encoding`` parameter."""


class _Done:
    pass


_DONE: Final = _Done()


class _Fetch:
    """One sentence's request: audio chunks (then `_DONE` or an error) into a queue."""

    def __init__(self, owner: DeepgramTextToSpeech, index: int, text: str) -> None:
        self.index = index
        self.queue: asyncio.Queue[bytes | _Done | BaseException] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(
            owner._fetch(text, self.queue), name=f"aura-{index}"
        )


class DeepgramTextToSpeech:
    """`TextToSpeech` on Deepgram Aura (``speak.v1.audio.generate``).

    Args:
        audio_format: the call's wire format (mono; mu-law, A-law or PCM16 at 8/16 kHz).
        client: the process-wide asyncio SDK client (`deepgram_client.create_async_client`).
        model: the Aura voice, e.g. ``aura-2-thalia-en``.
        attempts: tries per sentence before its first byte (1 = no retry).
        first_byte_timeout_s: longest wait for a sentence's first byte per attempt (a
            stalled request fails fast, so the fallback can speak instead).
        split_text: cuts a line into the pieces requested one by one; default: the line
            whole. The server passes `ai_pipeline.text_split.split_sentences`.

    Raises:
        ValueError: stereo formats or a bad attempt count.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        client: AsyncDeepgramClient,
        *,
        model: str = "aura-2-thalia-en",
        attempts: int = 2,
        first_byte_timeout_s: float = 3.0,
        split_text: TextSplitter = whole_text,
    ) -> None:
        if audio_format.channels != 1:
            raise ValueError("Aura speaks mono; pass the call's mono format")
        if attempts < 1 or first_byte_timeout_s <= 0:
            raise ValueError("attempts must be ≥ 1 and first_byte_timeout_s positive")
        self.audio_format = audio_format
        self._split_text = split_text
        self._client = client
        self._model = model
        self._attempts = attempts
        self._first_byte_timeout_s = first_byte_timeout_s
        self._sample_bytes = audio_format.encoding.bytes_per_sample
        self.requests = 0
        """Aura requests made (retries included)."""
        self.retries = 0
        """Requests that were retries."""

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """Stream ``text`` as wire audio, one Aura request per sentence.

        Closing the generator (or cancelling its consumer) closes the HTTP responses in
        flight at once.

        Raises:
            DeepgramTtsError: a request failed; ``completed_pieces`` says how many
                pieces of ``split_text`` were fully delivered before it.
        """
        pieces = self._split_text(text)
        fetches: list[_Fetch] = []
        try:
            for index in range(len(pieces)):
                if len(fetches) <= index:
                    fetches.append(_Fetch(self, index, pieces[index]))
                current = fetches[index]
                carry = b""
                while True:
                    if (
                        current.task.done()
                        and len(fetches) == index + 1
                        and index + 1 < len(pieces)
                    ):
                        # This sentence has fully arrived: request the next one now.
                        fetches.append(_Fetch(self, index + 1, pieces[index + 1]))
                    item = await current.queue.get()
                    if isinstance(item, _Done):
                        break
                    if isinstance(item, BaseException):
                        error = tts_error(item)
                        raise DeepgramTtsError(
                            str(error),
                            retryable=error.retryable,
                            status=error.status,
                            completed_pieces=index,
                        ) from item
                    if self._sample_bytes > 1:
                        # Keep whole samples: a chunk may end in the middle of one.
                        item = carry + item
                        cut = len(item) - len(item) % self._sample_bytes
                        item, carry = item[:cut], item[cut:]
                    if item:
                        yield item
        finally:
            for fetch in fetches:
                fetch.task.cancel()
            for fetch in fetches:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetch.task

    async def _fetch(self, text: str, queue: asyncio.Queue[bytes | _Done | BaseException]) -> None:
        try:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential_jitter(multiplier=0.1, max=0.5, jitter=0.1),
                retry=retry_if_exception(
                    lambda exc: isinstance(exc, DeepgramTtsError) and exc.retryable
                ),
                before_sleep=self._log_retry,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    await self._request(text, queue)
            queue.put_nowait(_DONE)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            queue.put_nowait(exc)

    async def _request(
        self, text: str, queue: asyncio.Queue[bytes | _Done | BaseException]
    ) -> None:
        """One attempt; errors before the first byte are retryable, after it never."""
        self.requests += 1
        stream = cast(
            AsyncGenerator[bytes, None],
            self._client.speak.v1.audio.generate(
                text=text,
                model=self._model,
                encoding=cast(Any, AURA_ENCODINGS[self.audio_format.encoding]),
                sample_rate=self.audio_format.sample_rate,
                container="none",
            ),
        )
        received = 0
        try:
            async with contextlib.aclosing(stream):
                chunks: AsyncIterator[bytes] = aiter(stream)
                try:
                    async with asyncio.timeout(self._first_byte_timeout_s):
                        first = await anext(chunks, b"")
                except TimeoutError:
                    raise DeepgramTtsError(
                        f"Aura sent no audio within {self._first_byte_timeout_s:.1f} s",
                        retryable=True,
                    ) from None
                if first:
                    received += len(first)
                    queue.put_nowait(first)
                async for chunk in chunks:
                    if chunk:
                        received += len(chunk)
                        queue.put_nowait(chunk)
        except DeepgramTtsError:
            raise
        except Exception as exc:
            error = tts_error(exc)
            if received:
                raise DeepgramTtsError(
                    f"Aura stream broke after {received} bytes: {error}",
                    retryable=False,
                    status=error.status,
                ) from exc
            raise error from exc
        if not received:
            raise DeepgramTtsError("Aura returned no audio", retryable=False)

    def _log_retry(self, state: Any) -> None:
        self.retries += 1
        log.warning(
            "Aura request failed before any audio (%s); retrying",
            state.outcome.exception() if state.outcome else "?",
        )
