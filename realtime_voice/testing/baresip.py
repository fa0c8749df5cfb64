"""An asyncio driver for one baresip process (Debian ``baresip-core`` 1.0.0), a real SIP
softphone peer for end-to-end tests: TLS, SDES-SRTP, Opus/PCMU, RFC 4733 DTMF.

Each `Baresip` owns a config directory under ``workdir``, runs ``baresip -f <dir>``, and
drives it over the ``ctrl_tcp`` module: netstrings of JSON, commands
``{"command": "dial", "params": "sip:...", "token": "1"}`` answered by
``{"response": true, "ok": true, "data": "...", "token": "1"}``, and events
``{"event": true, "type": "CALL_ESTABLISHED", "class": "call", "id": ..., "param": ...}``.

What baresip 1.0.0 does, found by experiment (and why the config below looks as it does):

* ``net_interface lo`` fails ("could not get network address"); ``net_interface
  127.0.0.1`` works and keeps eth0 out of the SDP.
* ``sip_listen 127.0.0.1:P`` binds UDP and TCP on P and **TLS on P+1**.
* A dialled URI gets the account's ``;transport=`` appended: dial ``sip:user@host:port``
  without one (`Baresip.dial` strips it).
* ``dial``/``accept``/``hangup``/``sndcode``/``quit`` come from the ``menu`` module, which
  must be loaded; it also implements ``answermode=auto``.
* ``aufile`` (the microphone) plays a WAV whose rate and channels equal ``ausrc_srate``
  / ``ausrc_channels`` (then baresip resamples for the codec); the driver sets both from
  the file's header. It plays the file once, and at its end ``menu`` **hangs the call
  up** ("audio error (0,end of file)"): make ``play_wav`` longer than the call. Without
  one the driver plays `SILENCE_SECONDS` of silence, the longest call it supports.
* There is no null audio player; ``aubridge,nil`` is one in effect (a bridge device
  nobody reads).
* ``sndfile`` writes ``dump-<time>-dec.wav`` (decoded RX, what it heard) and
  ``dump-<time>-enc.wav`` (TX before encoding, what it sent), 16-bit at the codec rate
  and channel count, in ``snd_path``.
* Events seen: CALL_INCOMING, CALL_RINGING, CALL_PROGRESS, CALL_ESTABLISHED, CALL_CLOSED
  (``param`` = reason), CALL_MENC (``param`` e.g. ``"0,audio,AES_CM_128_HMAC_SHA1_80"``),
  CALL_LOCAL_SDP, CALL_REMOTE_SDP, CALL_RTPESTAB, CALL_RTCP, CALL_DTMF_START (``param`` =
  the digit), CALL_DTMF_END, REGISTER_OK, REGISTER_FAIL, UNREGISTERING, SHUTDOWN, EXIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import time
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "BARESIP",
    "MODULES",
    "SILENCE_SECONDS",
    "Baresip",
    "BaresipAccount",
    "BaresipError",
    "baresip_available",
]

logger = logging.getLogger(__name__)

BARESIP = "baresip"
"""The executable looked up on ``PATH``."""

MODULE_PATH = Path("/usr/lib/baresip/modules")
"""Where Debian installs the modules."""

MODULES = ("opus.so", "g711.so", "aufile.so", "aubridge.so", "sndfile.so", "srtp.so")
"""The pinned module list (codecs, file source, null-ish player, recorder, SDES-SRTP).

No audio device, video or NAT module: the run must not depend on the machine."""

APP_MODULES = ("menu.so", "ctrl_tcp.so")
"""Application modules: ``menu`` supplies the commands and auto answer, ``ctrl_tcp`` the
control socket."""

SILENCE_SECONDS = 120.0
"""Length of the silent microphone file used without ``play_wav`` (the call ends with it)."""

_EVENT_LIMIT = 2000  # events kept per process; a test call produces a few dozen
_FRAME_LIMIT = 1 << 20  # a ctrl_tcp netstring larger than this is a broken stream
_LOG_LIMIT = 200_000  # characters of log quoted in an exception


class BaresipError(RuntimeError):
    """baresip failed to start, refused a command, or an event did not come in time.

    The message carries the tail of baresip's log.
    """


def baresip_available() -> bool:
    """Whether the baresip binary is on ``PATH`` (and Debian's modules are installed)."""
    return shutil.which(BARESIP) is not None and MODULE_PATH.is_dir()


@dataclass(frozen=True)
class BaresipAccount:
    """One baresip account line (``accounts`` file).

    Attributes:
        user: the user part of the AOR.
        domain: ``host[:port]`` of the AOR, e.g. ``"127.0.0.1"`` or a registrar's address.
        transport: SIP transport of the account (``;transport=`` of the AOR).
        password: digest password (``auth_pass``), None for none.
        auth_user: digest user name if not ``user``.
        register: REGISTER with ``domain`` (``regint`` 3600) or not (``regint=0``).
        audio_codecs: codecs in preference order, baresip's names (``opus/48000/2``,
            ``PCMU/8000``, ``PCMA/8000``).
        mediaenc: ``srtp-mand`` (SDES, RTP/SAVP, 4 crypto lines), ``srtp`` (optional
            SDES on RTP/AVP), or None for plain RTP.
        answermode: ``auto`` answers every incoming call, ``manual`` waits for `answer`.
        outbound: an outbound proxy URI (``sip:host:port;transport=tls``), or None.
    """

    user: str
    domain: str = "127.0.0.1"
    transport: Literal["tls", "tcp", "udp"] = "tls"
    password: str | None = None
    auth_user: str | None = None
    register: bool = False
    audio_codecs: tuple[str, ...] = ("opus/48000/2",)
    mediaenc: Literal["srtp-mand", "srtp"] | None = "srtp-mand"
    answermode: Literal["auto", "manual"] = "manual"
    outbound: str | None = None

    def line(self) -> str:
        """The account line baresip reads."""
        params = [
            f"regint={3600 if self.register else 0}",
            f"answermode={self.answermode}",
            f"audio_codecs={','.join(self.audio_codecs)}",
        ]
        if self.mediaenc is not None:
            params.append(f"mediaenc={self.mediaenc}")
        if self.password is not None:
            params.append(f"auth_pass={self.password}")
        if self.auth_user is not None:
            params.append(f"auth_user={self.auth_user}")
        if self.outbound is not None:
            params.append(f'outbound="{self.outbound}"')
        return f"<sip:{self.user}@{self.domain};transport={self.transport}>;" + ";".join(params)


def _wav_format(path: Path) -> tuple[int, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise BaresipError(f"{path}: aufile needs 16-bit PCM, not {8 * wav.getsampwidth()}-bit")
        return wav.getframerate(), wav.getnchannels()


def _write_silence(path: Path, seconds: float = SILENCE_SECONDS) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * int(8000 * seconds))


def _free_sip_port() -> int:
    """A port P with UDP P, TCP P and TCP P+1 (baresip's TLS port) all free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for kind, candidate in (
                (socket.SOCK_STREAM, port),
                (socket.SOCK_DGRAM, port),
                (socket.SOCK_STREAM, port + 1),
            ):
                sock = socket.socket(socket.AF_INET, kind)
                sockets.append(sock)
                sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise BaresipError("no free SIP port pair on 127.0.0.1")


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """One baresip process, its config, control connection, events and recordings.

    Use as ``async with Baresip(...) as phone:`` (start, then stop however the block ends).

    Args:
        workdir: a directory of its own (config, log and recordings go here).
        account: the one account.
        ca_file: CA certificate(s) (PEM) trusted for TLS (``sip_cafile``).
        cert_file: key plus certificate chain (PEM) presented when it is the TLS server
            (``sip_certificate``); needed to accept TLS calls.
        play_wav: the microphone: a 16-bit WAV played once from the start of each call;
            baresip hangs up when it ends. Without one: `SILENCE_SECONDS` of silence.
        record: load ``sndfile`` to record each call (RX and TX WAVs).
        sip_port: the UDP/TCP SIP port (TLS is ``sip_port + 1``); default: free ones.
        start_timeout_s: bound on start-up.
    """

    def __init__(
        self,
        workdir: Path,
        account: BaresipAccount,
        *,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        play_wav: Path | None = None,
        record: bool = True,
        sip_port: int | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.account = account
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.play_wav = play_wav
        self.record = record
        self.sip_port = sip_port if sip_port is not None else _free_sip_port()
        self.ctrl_port = _free_tcp_port()
        self.start_timeout_s = start_timeout_s
        self.config_dir = self.workdir / "config"
        self.record_dir = self.workdir / "recordings"
        self.log_path = self.workdir / "baresip.log"
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._events: deque[dict[str, Any]] = deque(maxlen=_EVENT_LIMIT)
        self._event_serial = 0  # serial number of the newest event appended
        self._consumed: dict[str, int] = {}  # kind -> serial of the last event handed out
        self._changed = asyncio.Condition()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._token = 0

    # --- addresses -------------------------------------------------------------------

    @property
    def tls_port(self) -> int:
        """The TLS listening port (baresip binds ``sip_port + 1``)."""
        return self.sip_port + 1

    def listen_port(self, transport: str | None = None) -> int:
        """The port a peer reaches this phone on for ``transport`` (default: the account's)."""
        return self.tls_port if (transport or self.account.transport) == "tls" else self.sip_port

    def uri(self, transport: str | None = None) -> str:
        """``sip:user@127.0.0.1:port`` a peer dials to reach this phone directly."""
        return f"sip:{self.account.user}@127.0.0.1:{self.listen_port(transport)}"

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Baresip:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _config_text(self) -> str:
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",
            "call_local_timeout 120",
            "call_max_calls 4",
            # Ring and alert tones: baresip's own files (missing ones only log an error).
            "audio_path /usr/share/baresip",
            "audio_player aubridge,nil",
            "audio_alert aubridge,nil",
            "rtcp_mux no",
            "jitter_buffer_delay 1-10",
            "statmode_default off",  # menu's per-second status line would flood the log
            f"module_path {MODULE_PATH}",
        ]
        if self.ca_file is not None:
            lines.append(f"sip_cafile {self.ca_file}")
        if self.cert_file is not None:
            lines.append(f"sip_certificate {self.cert_file}")
        if self.play_wav is not None:
            rate, channels = _wav_format(self.play_wav)
            lines += [
                f"audio_source aufile,{self.play_wav}",
                f"ausrc_srate {rate}",
                f"ausrc_channels {channels}",
            ]
        else:
            # Not aubridge: its source would hear its own player (an echo of the RX).
            silence = self.config_dir / "silence.wav"
            _write_silence(silence)
            lines += [f"audio_source aufile,{silence}", "ausrc_srate 8000", "ausrc_channels 1"]
        if self.record:
            lines.append(f"snd_path {self.record_dir}")
        modules = [m for m in MODULES if self.record or m != "sndfile.so"]
        lines += [f"module {m}" for m in modules]
        lines += ["module_tmp uuid.so", "module_tmp account.so"]
        lines += [f"module_app {m}" for m in APP_MODULES]
        lines.append(f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}")
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        """Write config and account, start baresip, connect ``ctrl_tcp``, wait until ready.

        Raises:
            BaresipError: the binary is missing, or baresip exits or is not ready within
                ``start_timeout_s``; the message holds its log.
        """
        if not baresip_available():
            raise BaresipError("baresip is not installed (Debian package baresip-core)")
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "config").write_text(self._config_text())
        (self.config_dir / "accounts").write_text(self.account.line() + "\n")
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                BARESIP,
                "-f",
                str(self.config_dir),
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await asyncio.wait_for(self._connect_and_wait_ready(), self.start_timeout_s)
        except (TimeoutError, OSError, BaresipError) as exc:
            await self.stop()
            raise BaresipError(f"baresip did not start ({exc!r})\n{self.log_text()}") from exc

    async def _connect_and_wait_ready(self) -> None:
        process = self._process
        assert process is not None
        # Both waits poll a condition (the port accepting, a line in the log) with a short
        # back-off: baresip offers no readiness signal a test could wait on instead.
        delay = 0.01
        while True:
            if process.returncode is not None:
                raise BaresipError(f"baresip exited with {process.returncode}")
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.ctrl_port
                )
                break
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        self._read_task = asyncio.create_task(self._read_loop(), name="baresip-ctrl")
        while "baresip is ready." not in self.log_text():
            if process.returncode is not None:
                raise BaresipError(f"baresip exited with {process.returncode}")
            await asyncio.sleep(0.02)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Quit cleanly (``quit`` command), kill after ``timeout_s``; idempotent."""
        process = self._process
        if process is not None and process.returncode is None and self._writer is not None:
            with contextlib.suppress(BaresipError, OSError, TimeoutError):
                await self.command("quit", timeout_s=min(1.0, timeout_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout_s)
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5.0)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
            self._read_task = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BaresipError("baresip stopped"))
        self._pending.clear()

    @property
    def returncode(self) -> int | None:
        """baresip's exit code, None while it runs (or before `start`)."""
        return None if self._process is None else self._process.returncode

    # --- control connection ----------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        try:
            while True:
                length_text = await reader.readuntil(b":")
                try:
                    length = int(length_text[:-1])
                except ValueError:
                    logger.warning("baresip ctrl_tcp: bad netstring length %r", length_text[:20])
                    return
                if not 0 <= length <= _FRAME_LIMIT:
                    logger.warning("baresip ctrl_tcp: netstring of %d bytes refused", length)
                    return
                frame = await reader.readexactly(length + 1)
                if frame[-1:] != b",":
                    logger.warning("baresip ctrl_tcp: netstring without its comma")
                    return
                await self._dispatch(frame[:-1])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            async with self._changed:
                self._changed.notify_all()  # wake waiters: no more events will come

    async def _dispatch(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("baresip ctrl_tcp: not JSON: %r", payload[:200])
            return
        if not isinstance(message, dict):
            return
        if message.get("response"):
            future = self._pending.pop(str(message.get("token")), None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.get("event"):
            async with self._changed:
                self._event_serial += 1
                message["_serial"] = self._event_serial
                self._events.append(message)
                self._changed.notify_all()

    async def command(self, command: str, params: str = "", *, timeout_s: float = 5.0) -> str:
        """Run one ctrl_tcp command and return its ``data`` text.

        Raises:
            BaresipError: baresip answered ``ok: false``, or not within ``timeout_s``.
        """
        if self._writer is None:
            raise BaresipError("baresip is not running")
        self._token += 1
        token = str(self._token)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        body = json.dumps({"command": command, "params": params, "token": token})
        self._writer.write(_netstring(body.encode()))
        await self._writer.drain()
        try:
            reply = await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise BaresipError(f"no answer to {command!r} in {timeout_s} s") from exc
        finally:
            self._pending.pop(token, None)
        if not reply.get("ok"):
            raise BaresipError(f"{command} {params!r} failed: {reply.get('data')!r}")
        return str(reply.get("data", ""))

    async def dial(self, uri: str) -> None:
        """Call ``uri`` (any ``;transport=`` is dropped: baresip adds the account's)."""
        parts = [p for p in uri.split(";") if not p.lower().startswith("transport=")]
        await self.command("dial", ";".join(parts))

    async def answer(self) -> None:
        """Answer the ringing incoming call (``accept``)."""
        await self.command("accept")

    async def hangup(self) -> None:
        """Hang up the current call."""
        await self.command("hangup")

    async def send_dtmf(self, digits: str) -> None:
        """Send RFC 4733 digits on the current call, one ``sndcode`` per digit."""
        for digit in digits:
            if digit not in "0123456789*#ABCD":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            await self.command("sndcode", digit)

    # --- events ----------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every event received so far (of ``kind`` if given), oldest first."""
        return [e for e in self._events if kind is None or e.get("type") == kind]

    async def wait_event(self, kind: str, *, timeout_s: float) -> dict[str, Any]:
        """The next event of type ``kind`` not returned by an earlier call for that kind.

        Events that arrived before the call count, so ``dial`` then ``wait_event`` cannot
        miss a fast one.

        Raises:
            BaresipError: none in ``timeout_s``, or the control connection closed; the
                message lists the events seen and the log.
        """
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while True:
                after = self._consumed.get(kind, 0)
                for event in self._events:
                    if event["_serial"] > after and event.get("type") == kind:
                        self._consumed[kind] = event["_serial"]
                        return event
                remaining = deadline - time.monotonic()
                closed = self._read_task is None or self._read_task.done()
                if remaining <= 0 or closed:
                    seen = [f"{e.get('type')}:{e.get('param', '')}" for e in self._events]
                    why = "connection closed" if closed else f"{timeout_s} s passed"
                    raise BaresipError(
                        f"no {kind} event ({why}); events: {seen}\n{self.log_text()}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    def received_digits(self) -> str:
        """The DTMF digits reported so far (CALL_DTMF_START events), in order."""
        return "".join(str(e.get("param", "")) for e in self.events("CALL_DTMF_START"))

    # --- files -----------------------------------------------------------------------

    def recordings(self) -> list[Path]:
        """The ``sndfile`` WAVs, oldest first: ``*-dec.wav`` is RX (decoded, what it
        heard), ``*-enc.wav`` is TX (what it sent, before encoding)."""
        return sorted(self.record_dir.glob("dump-*.wav"))

    def rx_recordings(self) -> list[Path]:
        """The RX (decoded, heard) recordings, oldest first."""
        return [p for p in self.recordings() if p.name.endswith("-dec.wav")]

    def tx_recordings(self) -> list[Path]:
        """The TX (sent) recordings, oldest first."""
        return [p for p in self.recordings() if p.name.endswith("-enc.wav")]

    def log_text(self) -> str:
        """baresip's stdout and stderr so far (the tail, if very long)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-_LOG_LIMIT:]
