"""Moonshine base-en speech recognition: our own greedy decoding loop on onnxruntime.

The model files ship inside the ``moonshine_cpp`` wheel (``models/base-en``); we only
read those files and never import that package, because importing it loads its own
bundled runtime next to ours. Moonshine transcribes whole segments (not streams), so
the caller endpoints with a VAD first (see `realtime_voice.providers.local_stt`).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from realtime_voice.providers.base import PCM16, SttError

__all__ = [
    "SAMPLE_RATE",
    "MoonshineRecognizer",
    "Recognition",
    "default_model_dir",
    "load_vocabulary",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Moonshine's only input rate."""

_START_TOKEN = 1
_END_TOKEN = 2
_FIRST_TEXT_TOKEN = 3
_LAYERS = 8
_HEADS = 8
_HEAD_DIM = 52
# Greedy decoders can loop forever on noise ("the the the..."); real speech rarely
# exceeds ~4 tokens per second, so 6.5/s plus a little room only ever cuts loops.
_TOKENS_PER_SECOND = 6.5
_EXTRA_TOKENS = 4
# Moonshine sometimes ends the transcript at once on real speech (robotic voices,
# long padding): measured on espeak-ng speech, those cases put P(end) at 0.43-0.49 on
# the first step, while silence, line noise and tones put it at 0.89-1.0 and clear
# speech below 0.16. Below this probability the first step takes the best word instead.
_MIN_EMPTY_PROB = 0.6
_LOG_MIN_EMPTY_PROB = math.log(_MIN_EMPTY_PROB)
# The encoder's three strided convolutions need ~56 ms to produce any frame at all;
# below 0.1 s there is nothing to recognise anyway.
_MIN_SAMPLES = SAMPLE_RATE // 10
_WARM_UP_TOKENS = 10
_SPACE_MARK = "\u2581"  # SentencePiece's word-boundary marker


@dataclass(frozen=True, slots=True)
class Recognition:
    """The text of one segment and how sure the model was.

    Attributes:
        text: the transcript, stripped; empty when nothing was recognised.
        confidence: geometric mean of the per-token probabilities the greedy decoder
            picked (0..1); 0.0 for an empty transcript.
        tokens: number of text tokens decoded (for diagnostics).
    """

    text: str
    confidence: float
    tokens: int


def default_model_dir() -> Path:
    """Locate ``models/base-en`` inside the installed ``moonshine_cpp`` wheel.

    ``find_spec`` on a top-level package only reads its location; it does not run the
    package (which would load moonshine_cpp's own native runtime).

    Raises:
        SttError: the wheel is not installed.
    """
    spec = importlib.util.find_spec("moonshine_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise SttError(
            "Moonshine model files not found: install the offline extra "
            "(pip install 'realtime-voice[offline]', which provides moonshine_cpp)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "base-en"


def load_vocabulary(path: Path) -> list[bytes]:
    """Read Moonshine's ``tokenizer.bin``: length-prefixed byte strings, index = token id.

    A length byte below 0x80 is the length itself; a byte ≥ 0x80 carries the low seven
    bits and the next byte the high bits (a two-byte varint).

    Raises:
        SttError: the file is truncated or malformed.
    """
    data = path.read_bytes()
    vocab: list[bytes] = []
    i = 0
    while i < len(data):
        length = data[i]
        i += 1
        if length >= 0x80:
            if i >= len(data):
                raise SttError(f"{path}: truncated length at byte {i}")
            length = (length & 0x7F) | (data[i] << 7)
            i += 1
        if i + length > len(data):
            raise SttError(f"{path}: token {len(vocab)} runs past the end of the file")
        vocab.append(data[i : i + length])
        i += length
    if len(vocab) <= _FIRST_TEXT_TOKEN:
        raise SttError(f"{path}: only {len(vocab)} tokens")
    return vocab


class MoonshineRecognizer:
    """Moonshine base-en on onnxruntime: 16 kHz mono PCM in, text out.

    One instance serves every call of a process (`shared`); `transcribe` is blocking
    and thread-safe (onnxruntime sessions allow concurrent ``run`` calls and the loop
    keeps its state in locals), so call it from worker threads, never the event loop.
    """

    _shared: ClassVar[MoonshineRecognizer | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, encoder: Any, decoder: Any, vocabulary: list[bytes]) -> None:
        """Wrap loaded sessions; use `load` or `shared` instead of calling this.

        Args:
            encoder: onnxruntime session of ``encoder_model.ort``.
            decoder: onnxruntime session of ``decoder_model_merged.ort``.
            vocabulary: token id → bytes, from `load_vocabulary`.
        """
        self._encoder = encoder
        self._decoder = decoder
        self._vocab = vocabulary
        names = [o.name for o in decoder.get_outputs()]
        if names[0] != "logits" or len(names) != 1 + 4 * _LAYERS:
            raise SttError(f"unexpected Moonshine decoder outputs: {names[:3]}...")
        # present.N.decoder.key → past_key_values.N.decoder.key: the same order as inputs.
        self._present_to_past = [
            (idx, "past_key_values" + name[len("present") :])
            for idx, name in enumerate(names)
            if name.startswith("present.")
        ]

    @classmethod
    def load(cls, model_dir: Path | None = None, *, warm_up: bool = False) -> MoonshineRecognizer:
        """Load the encoder, decoder and tokenizer (≈0.7 s; blocking).

        Args:
            model_dir: folder with ``encoder_model.ort``, ``decoder_model_merged.ort``
                and ``tokenizer.bin``; default: the copy inside the moonshine_cpp wheel.
            warm_up: also run `warm_up` before returning.

        Raises:
            SttError: onnxruntime or the model files are missing or unreadable.
        """
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise SttError(
                "onnxruntime is not installed: pip install 'realtime-voice[offline]'"
            ) from exc
        folder = model_dir if model_dir is not None else default_model_dir()
        started = time.perf_counter()
        options = ort.SessionOptions()
        # One thread per run: several calls decode at once on a 2-core box, and
        # multi-threaded runs from concurrent calls would oversubscribe the cores and
        # spin against each other; parallelism comes from concurrent decodes instead.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # The arena reuses buffers between runs; without it decoding is ~2.4x slower.
        options.enable_cpu_mem_arena = True
        try:
            encoder = ort.InferenceSession(
                str(folder / "encoder_model.ort"), options, providers=["CPUExecutionProvider"]
            )
            decoder = ort.InferenceSession(
                str(folder / "decoder_model_merged.ort"),
                options,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise SttError(f"cannot load Moonshine from {folder}: {exc}") from exc
        try:
            vocabulary = load_vocabulary(folder / "tokenizer.bin")
        except OSError as exc:
            raise SttError(f"cannot read Moonshine tokenizer in {folder}: {exc}") from exc
        log.info(
            "Moonshine base-en loaded from %s in %.2f s",
            folder,
            time.perf_counter() - started,
        )
        recognizer = cls(encoder, decoder, vocabulary)
        if warm_up:
            recognizer.warm_up()
        return recognizer

    @classmethod
    def shared(cls) -> MoonshineRecognizer:
        """The process-wide instance, loaded and warmed up on first use (thread-safe).

        Raises:
            SttError: the model cannot be loaded (the next call tries again).
        """
        instance = cls._shared
        if instance is None:
            with cls._shared_lock:
                instance = cls._shared
                if instance is None:
                    instance = cls.load(warm_up=True)
                    cls._shared = instance
        return instance

    def warm_up(self) -> None:
        """Run the model once on silence (≈1 s) so the first caller does not pay for it.

        onnxruntime sizes its arena and finishes lazy initialisation on the first runs:
        measured here, the first real decode took ≈1.5 s instead of ≈0.6 s without this.
        """
        started = time.perf_counter()
        silence = np.zeros((1, 2 * SAMPLE_RATE), dtype=np.float32)
        self._decode(silence, _WARM_UP_TOKENS, stop_at_end=False)
        log.info("Moonshine warmed up in %.2f s", time.perf_counter() - started)

    def transcribe(self, pcm16k: PCM16) -> str:
        """Transcribe one segment of 16 kHz mono speech (blocking; thread-safe).

        Args:
            pcm16k: int16 samples, ideally ≤ 15 s (longer works but costs more).

        Returns:
            The text, or "" for silence, noise or audio shorter than 0.1 s.
        """
        return self.recognize(pcm16k).text

    def recognize(self, pcm16k: PCM16) -> Recognition:
        """Like `transcribe`, with the decoder's confidence.

        Args:
            pcm16k: int16 samples at 16 kHz, mono.

        Raises:
            SttError: onnxruntime failed on this input.
        """
        samples = np.asarray(pcm16k).reshape(-1)
        if samples.size < _MIN_SAMPLES:
            return Recognition("", 0.0, 0)
        audio = (samples.astype(np.float32) / 32768.0)[np.newaxis, :]
        max_tokens = math.ceil(samples.size / SAMPLE_RATE * _TOKENS_PER_SECOND) + _EXTRA_TOKENS
        try:
            tokens, log_prob = self._decode(audio, max_tokens)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise SttError(f"Moonshine decoding failed: {exc}") from exc
        text = self._detokenize(tokens)
        if not text:
            return Recognition("", 0.0, 0)
        return Recognition(text, math.exp(log_prob / max(len(tokens), 1)), len(tokens))

    def _decode(
        self, audio: npt.NDArray[np.float32], max_tokens: int, *, stop_at_end: bool = True
    ) -> tuple[list[int], float]:
        """Greedy decoding with the merged decoder and its key/value cache."""
        hidden = self._encoder.run(None, {"input_values": audio})[0]
        empty = np.zeros((1, _HEADS, 0, _HEAD_DIM), dtype=np.float32)
        past: dict[str, npt.NDArray[np.float32]] = {
            f"past_key_values.{layer}.{part}.{kind}": empty
            for layer in range(_LAYERS)
            for part in ("decoder", "encoder")
            for kind in ("key", "value")
        }
        feeds: dict[str, Any] = {
            "input_ids": np.array([[_START_TOKEN]], dtype=np.int64),
            "encoder_hidden_states": hidden,
            "use_cache_branch": np.array([False]),
        }
        tokens: list[int] = []
        log_prob = 0.0
        for step in range(max_tokens):
            outputs = self._decoder.run(None, {**feeds, **past})
            logits = outputs[0][0, -1].astype(np.float64)
            token = int(np.argmax(logits))
            # log of the softmax denominator, computed stably.
            log_norm = float(logits.max() + np.log(np.exp(logits - logits.max()).sum()))
            if token == _END_TOKEN and stop_at_end:
                if step > 0 or logits[token] - log_norm >= _LOG_MIN_EMPTY_PROB:
                    break
                # An unsure "nothing here" on a segment the VAD called speech: take the
                # best word instead (see _MIN_EMPTY_PROB).
                logits[_END_TOKEN] = -np.inf
                token = int(np.argmax(logits))
            log_prob += float(logits[token] - log_norm)
            tokens.append(token)
            for idx, name in self._present_to_past:
                # The encoder (cross-attention) cache is computed on the first step
                # only; later steps take it back as input unchanged.
                if step == 0 or ".decoder." in name:
                    past[name] = outputs[idx]
            feeds["input_ids"] = np.array([[token]], dtype=np.int64)
            feeds["use_cache_branch"] = np.array([True])
        return tokens, log_prob

    def _detokenize(self, tokens: list[int]) -> str:
        raw = b"".join(self._vocab[t] for t in tokens if _FIRST_TEXT_TOKEN <= t < len(self._vocab))
        return raw.decode("utf-8", errors="replace").replace(_SPACE_MARK, " ").strip()
