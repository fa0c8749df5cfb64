"""Re-chunk a byte stream into fixed-size frames (20 ms of wire audio), keeping the rest.

Gateways send audio in whatever chunk sizes their network stack produced; everything
downstream wants exact 20 ms frames. `FrameChunker` is the incremental splitter between
the two, with a hard bound on what it holds between calls.
"""

from __future__ import annotations

__all__ = ["FrameChunker"]


class FrameChunker:
    """Split arbitrary chunks into frames of exactly ``frame_bytes`` bytes.

    The partial frame left over after a push is kept for the next push. At most
    ``max_pending_bytes`` are kept: past that the oldest bytes are dropped and counted in
    `dropped_bytes` (only possible when ``frame_bytes`` exceeds the bound, since a whole
    frame is always emitted as soon as it is complete).

    Args:
        frame_bytes: size of every frame returned by `push`.
        max_pending_bytes: bound on the bytes held between calls.

    Raises:
        ValueError: ``frame_bytes`` is not positive or ``max_pending_bytes`` is negative.
    """

    __slots__ = ("_buffer", "_dropped", "_frame_bytes", "_max_pending")

    def __init__(self, frame_bytes: int, max_pending_bytes: int) -> None:
        _check_frame_bytes(frame_bytes)
        if max_pending_bytes < 0:
            raise ValueError(f"max_pending_bytes must be >= 0, got {max_pending_bytes}")
        self._frame_bytes = frame_bytes
        self._max_pending = max_pending_bytes
        # bytearray drops a prefix in O(1) (it moves its start), so keeping a short
        # remainder here never turns into quadratic copying.
        self._buffer = bytearray()
        self._dropped = 0

    @property
    def frame_bytes(self) -> int:
        """Size of the frames `push` returns."""
        return self._frame_bytes

    @property
    def pending(self) -> int:
        """Bytes held towards the next frame."""
        return len(self._buffer)

    @property
    def dropped_bytes(self) -> int:
        """Bytes discarded so far (overflow and format changes)."""
        return self._dropped

    def push(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add bytes and take every frame that is now complete.

        Args:
            data: the next bytes of the stream (any length; not retained).

        Returns:
            The complete frames in stream order, each exactly `frame_bytes` long.
        """
        size = self._frame_bytes
        buffer = self._buffer
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if not buffer and len(view) == size:
            # The common case on a healthy stream: one frame in, one frame out, no copy
            # at all for bytes input (slicing a bytes object whole returns it).
            return [bytes(view)]
        frames: list[bytes] = []
        start = 0
        if buffer:
            need = size - len(buffer)
            if len(view) < need:
                buffer += view
                self._bound()
                return frames
            buffer += view[:need]
            frames.append(bytes(buffer))
            buffer.clear()
            start = need
        end = start + (len(view) - start) // size * size
        frames.extend(bytes(view[i : i + size]) for i in range(start, end, size))
        if end < len(view):
            buffer += view[end:]
            self._bound()
        return frames

    def flush(self, pad_byte: int | None = None) -> bytes | None:
        """Take the partial frame and empty the chunker.

        Args:
            pad_byte: when given, pad the remainder to a whole frame with this byte
                (e.g. `codec.silence_byte` of the encoding).

        Returns:
            The remainder (padded to `frame_bytes` when ``pad_byte`` is given), or
            ``None`` if nothing was pending.

        Raises:
            ValueError: ``pad_byte`` is not in 0..255.
        """
        if pad_byte is not None and not 0 <= pad_byte <= 255:
            raise ValueError(f"pad_byte must be in 0..255, got {pad_byte}")
        if not self._buffer:
            return None
        if pad_byte is not None:
            self._buffer += bytes((pad_byte,)) * (self._frame_bytes - len(self._buffer))
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    def set_frame_bytes(self, frame_bytes: int) -> None:
        """Switch to a new frame size (a format change).

        The partial frame of the old format cannot be interpreted in the new one, so it is
        dropped and counted in `dropped_bytes`.

        Raises:
            ValueError: ``frame_bytes`` is not positive.
        """
        _check_frame_bytes(frame_bytes)
        self._dropped += len(self._buffer)
        self._buffer.clear()
        self._frame_bytes = frame_bytes

    def _bound(self) -> None:
        excess = len(self._buffer) - self._max_pending
        if excess > 0:
            del self._buffer[:excess]
            self._dropped += excess


def _check_frame_bytes(frame_bytes: int) -> None:
    if frame_bytes <= 0:
        raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
