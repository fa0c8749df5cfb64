"""One gateway media WebSocket under gevent: blocking ``websocket-client``, one reader.

Locust runs every user as a greenlet in one process, with the standard library patched
by gevent, so a blocking client is the natural fit: ``websocket-client`` reads and writes
a plain socket, which the patch makes cooperative. (An asyncio client such as
``websockets`` would need an event loop per greenlet or a bridge thread.) A call needs to
send every 20 ms while the server may speak at any time, so each `MediaSocket` runs one
reader greenlet that hands every message, stamped with its arrival time, to a callback;
any greenlet may send (the client's send lock, gevent-patched, keeps frames whole).

The reader handles the close handshake itself rather than through the client's helpers:
only one greenlet may read a socket, and the client's ``close()`` reads the reply itself.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import gevent  # type: ignore[import-untyped]
import gevent.event  # type: ignore[import-untyped]
import websocket
from websocket import ABNF

__all__ = ["Closed", "MediaSocket", "SocketClosedError"]

_NO_STATUS = 1005
_ABNORMAL = 1006


@dataclass(frozen=True, slots=True)
class Closed:
    """How the connection ended.

    Attributes:
        code: the server's close code (1006 when the connection dropped without a close
            frame, 1005 when the close frame carried no code).
        reason: the server's close reason.
        by_server: the server started the close (rather than answering ours).
        error: what broke the connection, when it did not close cleanly.
    """

    code: int
    reason: str
    by_server: bool
    error: str | None = None


class SocketClosedError(Exception):
    """A send on a connection that is already closed."""


OnMessage = Callable[[str | bytes, float], None]
"""Called in the reader greenlet with each message and its ``perf_counter`` arrival time."""


class MediaSocket:
    """A connected media WebSocket with its reader greenlet.

    Use `connect`; then `send` from any greenlet, `close` to hang up, `wait_closed` to wait
    for the end. `closed` is set once the connection is over.

    Args:
        ws: the connected client.
        on_message: receives each text or binary message with its arrival time.
        on_close: called once when the connection ends (from the reader greenlet, or
            from whoever cut it).
    """

    def __init__(
        self,
        ws: websocket.WebSocket,
        on_message: OnMessage,
        on_close: Callable[[Closed], None],
    ) -> None:
        """Wrap a connected client and start reading."""
        self._ws = ws
        self._on_message = on_message
        self._on_close = on_close
        self._we_closed = False
        self.closed: Closed | None = None
        self._done = gevent.event.Event()
        self._reader = gevent.spawn(self._read)

    @classmethod
    def connect(
        cls,
        url: str,
        on_message: OnMessage,
        on_close: Callable[[Closed], None],
        *,
        timeout_s: float = 10.0,
    ) -> MediaSocket:
        """Open ``url`` as a gateway would and start reading.

        No ``Origin`` header (gateways send none; the server may allow-list browser
        origins) and no proxy (a gateway reaches the media plane directly).

        Raises:
            websocket.WebSocketException: the handshake failed (e.g. a refused token).
            OSError: the server could not be reached.
        """
        host = urlsplit(url).hostname or ""
        ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
        ws.connect(url, timeout=timeout_s, suppress_origin=True, http_no_proxy=[host])  # type: ignore[no-untyped-call]
        # From now on the reader blocks until the server sends something; deadlines are
        # kept by whoever waits for a message, not by the socket.
        ws.settimeout(None)
        return cls(ws, on_message, on_close)

    def send(self, message: str | bytes) -> None:
        """Send one message (text for ``str``, binary for ``bytes``).

        Raises:
            SocketClosedError: the connection is closed or closing.
        """
        if self.closed is not None or self._we_closed:
            raise SocketClosedError("the media connection is closed")
        try:
            if isinstance(message, bytes):
                self._ws.send_binary(message)
            else:
                self._ws.send_text(message)
        except (websocket.WebSocketException, OSError) as exc:
            raise SocketClosedError(f"send failed: {exc}") from exc

    def close(self, code: int = 1000, reason: str = "", *, wait_s: float = 5.0) -> Closed:
        """Start the closing handshake and wait for the server's answer.

        Returns at once when the connection is already closed. If the server does not
        answer within ``wait_s``, the socket is cut.

        Returns:
            How the connection ended.
        """
        if self.closed is None and not self._we_closed:
            self._we_closed = True
            # A connection already gone is reported by the reader.
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.send_close(code, reason.encode())
        if not self._done.wait(wait_s):
            self._finish(Closed(_ABNORMAL, "", False, f"no close answer within {wait_s:g} s"))
        assert self.closed is not None
        return self.closed

    def wait_closed(self, timeout_s: float | None) -> bool:
        """Wait until the connection is over; False on timeout."""
        return bool(self._done.wait(timeout_s))

    def abort(self) -> None:
        """Cut the connection now (no handshake) and stop the reader."""
        self._finish(Closed(_ABNORMAL, "", False, "aborted by the caller"))

    def _finish(self, closed: Closed) -> None:
        if self.closed is not None:
            return
        self.closed = closed
        self._ws.shutdown()  # type: ignore[no-untyped-call]
        if gevent.getcurrent() is not self._reader:
            self._reader.kill(block=False)
        self._done.set()
        self._on_close(closed)

    def _read(self) -> None:
        fragments: list[bytes] = []
        fragment_opcode = ABNF.OPCODE_TEXT
        try:
            while True:
                frame = self._ws.recv_frame()  # type: ignore[no-untyped-call]
                now = time.perf_counter()
                opcode = frame.opcode
                if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                    if opcode != ABNF.OPCODE_CONT:
                        fragment_opcode = opcode
                    fragments.append(bytes(frame.data))
                    if not frame.fin:
                        continue
                    data = b"".join(fragments)
                    fragments.clear()
                    if fragment_opcode == ABNF.OPCODE_TEXT:
                        self._on_message(data.decode("utf-8", "replace"), now)
                    else:
                        self._on_message(data, now)
                elif opcode == ABNF.OPCODE_PING:
                    self._ws.pong(frame.data)
                elif opcode == ABNF.OPCODE_CLOSE:
                    self._on_close_frame(bytes(frame.data))
                    return
        except (websocket.WebSocketException, OSError) as exc:
            self._finish(Closed(_ABNORMAL, "", not self._we_closed, str(exc) or type(exc).__name__))

    def _on_close_frame(self, data: bytes) -> None:
        code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else _NO_STATUS
        reason = data[2:].decode("utf-8", "replace")
        by_server = not self._we_closed
        if by_server:
            # Echo the server's code, as RFC 6455 §5.5.1 asks, so both sides agree.
            echo = code if 1000 <= code <= 4999 and code not in (_NO_STATUS, _ABNORMAL) else 1000
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.send_close(echo, b"")
        self._finish(Closed(code, reason, by_server))
