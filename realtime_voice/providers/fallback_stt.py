"""A `SpeechToText` that falls back to another when the first fails, so the caller is heard.

Typical use: Deepgram first, the offline recogniser second. When the primary cannot
start (a bad key, an outage), the stand-in starts instead; when it fails mid-call (it
stalled, or its reconnects ran out), the stand-in takes over from there. Either way the
event stream says so with a `RecognizerSwitched` event, so the call can record it and,
mid-call, ask the caller to repeat what was lost. A failure of the stand-in is final.

Audio routing follows the engine listening now: `accepts_wire` asks it, so a call whose
wire bytes went straight to Deepgram gets decoded PCM for the offline engine after a
switch (the session re-checks on `RecognizerSwitched`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from realtime_voice.providers.base import (
    PCM16,
    RecognizerSwitched,
    SpeechEvent,
    SpeechToText,
    SttError,
    WireAudioSink,
)

__all__ = ["FallbackSpeechToText"]

log = logging.getLogger(__name__)


class FallbackSpeechToText:
    """Listen with ``primary``; on `SttError`, go on with the stand-in ``make_fallback()``.

    Args:
        primary: the preferred recogniser stream for this call (not started).
        make_fallback: makes the stand-in stream (same call format), only when needed.
        primary_name: the primary's name for log lines.
    """

    def __init__(
        self,
        primary: SpeechToText,
        make_fallback: Callable[[], SpeechToText],
        *,
        primary_name: str = "primary",
    ) -> None:
        self._current = primary
        self._make_fallback = make_fallback
        self._name = primary_name
        self._pending: RecognizerSwitched | None = None
        self.on_fallback = False
        """The stand-in is listening (reported by `ReportsRecognizerFallback`)."""
        self.fallback_reason = ""
        """What the primary said when it failed."""

    @property
    def current(self) -> SpeechToText:
        """The engine listening now."""
        return self._current

    @property
    def confirms_speech_start(self) -> bool:
        """As the engine listening now (see `SpeechToText.confirms_speech_start`)."""
        return self._current.confirms_speech_start

    @property
    def metrics(self) -> object:
        """The listening engine's counters (dropped frames, reconnects), if it keeps any."""
        return getattr(self._current, "metrics", None)

    async def start(self) -> None:
        """Start the primary, or the stand-in when the primary cannot start.

        Raises:
            SttError: the stand-in could not start either.
        """
        try:
            await self._current.start()
        except SttError as exc:
            log.error(
                "speech recognition %s unavailable (%s): using the offline recogniser",
                self._name,
                exc,
            )
            await self._switch(exc, mid_call=False)

    async def _switch(self, exc: SttError, *, mid_call: bool) -> None:
        failed = self._current
        with contextlib.suppress(Exception):
            await failed.stop()
        fallback = self._make_fallback()
        await fallback.start()  # SttError here is final
        self._current = fallback
        self.on_fallback = True
        self.fallback_reason = str(exc)[:200]
        self._pending = RecognizerSwitched(self.fallback_reason, mid_call=mid_call)

    def send_audio(self, pcm: PCM16) -> None:
        """Queue a 16 kHz PCM frame for the listening engine."""
        self._current.send_audio(pcm)

    def accepts_wire(self, encoding: str, sample_rate: int) -> bool:
        """Whether the listening engine takes the call's wire bytes as they are."""
        current = self._current
        return isinstance(current, WireAudioSink) and current.accepts_wire(encoding, sample_rate)

    def send_wire(self, payload: bytes, *, silent: bool = False) -> None:
        """Queue wire bytes (only after `accepts_wire` said yes)."""
        current = self._current
        assert isinstance(current, WireAudioSink)
        current.send_wire(payload, silent=silent)

    async def finalize(self) -> None:
        """Flush the listening engine's pending utterance."""
        await self._current.finalize()

    async def stop(self) -> None:
        """Stop the listening engine. Safe to call twice."""
        await self._current.stop()

    async def events(self) -> AsyncIterator[SpeechEvent]:
        """The listening engine's events; a `RecognizerSwitched` marks each hand-over.

        Raises:
            SttError: the stand-in failed, or the primary failed with no stand-in left.
        """
        while True:
            if self._pending is not None:
                switched, self._pending = self._pending, None
                yield switched
            try:
                async for event in self._current.events():
                    yield event
                return
            except SttError as exc:
                if self.on_fallback:
                    raise
                log.error(
                    "speech recognition %s failed mid-call (%s): switching to the offline "
                    "recogniser",
                    self._name,
                    exc,
                )
                try:
                    await self._switch(exc, mid_call=True)
                except SttError as again:
                    log.error("the offline recogniser did not start either: %s", again)
                    raise exc from again
