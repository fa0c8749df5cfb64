"""Run ``realtime-voice serve`` as a child process and play a bridge gateway against it.

Used by the process-level end-to-end tests: the server runs exactly as an operator starts
it (console script, environment, working directory), so start-up validation, signal
handling and the exit status are what a user sees, not what an in-process fixture sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from realtime_voice.testing.processes import child_environment, cli_command, free_ports

__all__ = [
    "HEALTH_PATH",
    "INBOUND_PATH",
    "BridgeGateway",
    "Frame",
    "ServeProcess",
    "free_ports",
    "get_json",
    "post_inbound",
    "serve_command",
    "serve_env",
]

HEALTH_PATH = "/api/voice/realtime/health"
INBOUND_PATH = "/api/voice/inbound"

# 20 ms of mu-law silence (0xFF decodes to 0): what a gateway sends while the caller is quiet.
SILENCE_FRAME = b"\xff" * 160

Frame = bytes | dict[str, Any]
"""One message from the server: binary audio, or a decoded JSON control frame."""

# Variables the server reads: the child must see only what a test sets, never a
# developer's shell settings (a stray VOICE_MEDIA_PORT would change what is tested).
def serve_command() -> list[str]:
    """The command line of ``realtime-voice serve`` for the interpreter running the tests."""
    return cli_command("serve")


def serve_env(http_port: int, media_port: int, **settings: str) -> dict[str, str]:
    """The child's environment: loopback listeners on the given ports, plus ``settings``.

    Args:
        http_port: ``VOICE_HTTP_PORT``.
        media_port: ``VOICE_MEDIA_PORT`` (the public media URL points at it).
        **settings: further variables; they override the defaults above.
    """
    env = child_environment()
    env.update(
        VOICE_HTTP_HOST="127.0.0.1",
        VOICE_MEDIA_HOST="127.0.0.1",
        VOICE_HTTP_PORT=str(http_port),
        VOICE_MEDIA_PORT=str(media_port),
        VOICE_PUBLIC_MEDIA_URL=f"ws://127.0.0.1:{media_port}",
    )
    env.update(settings)
    return env


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """``GET url``: the status and JSON body (one connection, closed afterwards)."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.json()
        assert isinstance(body, dict), body
        return resp.status, body


async def post_inbound(http_port: int, call_id: str) -> tuple[int, dict[str, Any]]:
    """Send the inbound-call webhook for ``call_id``: status and JSON body.

    The body is docs/PROTOCOLS.md §1.
    """
    payload = {
        "event": "call.inbound",
        "body": {
            "id": call_id,
            "from": {"phoneNumber": "+15555551234"},
            "to": {"phoneNumber": "+15555555678"},
        },
    }
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{http_port}{INBOUND_PATH}", json=payload
    ) as resp:
        body = await resp.json()
        assert isinstance(body, dict), body
        return resp.status, body


class ServeProcess:
    """One ``realtime-voice serve`` child process, its output kept in files.

    Output goes to files rather than pipes: nobody reads a pipe while the test awaits the
    call, and a full pipe would block the server's logging and so the whole server.

    Args:
        workdir: the child's working directory (where it looks for ``.env``).
        env: the child's complete environment (see `serve_env`).
    """

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.http_port = int(self.env["VOICE_HTTP_PORT"])
        self.media_port = int(self.env["VOICE_MEDIA_PORT"])
        self._stdout = workdir / "serve.stdout"
        self._stderr = workdir / "serve.stderr"
        with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                serve_command(),
                cwd=workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def health_url(self, port: int | None = None) -> str:
        """The health endpoint on ``port`` (default: the HTTP control plane)."""
        return f"http://127.0.0.1:{port or self.http_port}{HEALTH_PATH}"

    @property
    def stdout(self) -> str:
        """Everything the child printed to stdout so far."""
        return self._stdout.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        """Everything the child printed to stderr (its log) so far."""
        return self._stderr.read_text(encoding="utf-8", errors="replace")

    async def wait_log(self, want: Callable[[str], bool], *, deadline_s: float) -> str:
        """Poll the child's log until one of its lines satisfies ``want``; returns that line.

        Raises:
            AssertionError: the child exited, or ``deadline_s`` passed first.
        """
        try:
            async with asyncio.timeout(deadline_s):
                while True:
                    self._check_running()
                    for line in self.stderr.splitlines():
                        if want(line):
                            return line
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(
                f"no log line matched within {deadline_s} s:\n{self.stderr}"
            ) from None

    async def wait_stdout(self, want: Callable[[str], bool], *, deadline_s: float) -> str:
        """Poll what the child printed until ``want`` holds for it; returns it all.

        Raises:
            AssertionError: the child exited, or ``deadline_s`` passed first.
        """
        try:
            async with asyncio.timeout(deadline_s):
                while not want(printed := self.stdout):
                    self._check_running()
                    await asyncio.sleep(0.05)
                return printed
        except TimeoutError:
            raise AssertionError(
                f"stdout never matched within {deadline_s} s:\n{self.stdout}\n{self.stderr}"
            ) from None

    def _check_running(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"realtime-voice serve exited with {code}:\n{self.stderr}")

    async def wait_health(
        self, want: Callable[[int, dict[str, Any]], bool], *, deadline_s: float
    ) -> tuple[int, dict[str, Any]]:
        """Poll the HTTP health endpoint until ``want(status, body)`` holds.

        Refused connections are retried (the server is still loading its models); the
        child exiting fails at once with its log.

        Raises:
            AssertionError: the child exited, or ``deadline_s`` passed first.
        """
        last: object = "no answer"
        try:
            async with asyncio.timeout(deadline_s):
                while True:
                    self._check_running()
                    try:
                        status, body = await get_json(self.health_url())
                    except aiohttp.ClientConnectionError as exc:
                        last = exc
                    else:
                        last = (status, body)
                        if want(status, body):
                            return status, body
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"health never matched within {deadline_s} s (last: {last})\n{self.stderr}"
            ) from None

    async def wait_ready(self, deadline_s: float = 90.0) -> dict[str, Any]:
        """Wait until the HTTP plane answers health with 200; returns the body."""
        _, body = await self.wait_health(lambda status, _: status == 200, deadline_s=deadline_s)
        return body

    def send_signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Deliver ``sig`` (SIGTERM by default) to the server."""
        self._check_running()
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float) -> int:
        """The exit status, waited for with ``proc.wait(timeout=timeout_s)`` off the loop.

        Raises:
            AssertionError: the server was still running after ``timeout_s``.
        """
        try:
            return await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"realtime-voice serve still running {timeout_s} s later:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        """Kill the child if it is still running and reap it (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class BridgeGateway:
    """The gateway side of one RingCentral bridge call (docs/PROTOCOLS.md §2).

    It streams 20 ms silence frames at real time, echoes every ``mark`` at once (as a
    gateway does when playback reaches it) and records every frame the server sends, in
    order, so a test can check what the caller heard and in which order.

    Args:
        ws: the open media WebSocket.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.closed = False
        self._changed = asyncio.Condition()
        self._stop_audio = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start streaming silence and reading the server's frames."""
        self._sender = asyncio.create_task(self._send_silence(), name="gateway-audio")
        self._reader = asyncio.create_task(self._read(), name="gateway-reader")

    async def send_json(self, frame: Mapping[str, object]) -> None:
        """Send one JSON control frame."""
        await self.ws.send(json.dumps(frame))

    async def stop_audio(self) -> None:
        """Stop the silence stream (the caller's side goes quiet on the wire)."""
        self._stop_audio.set()
        if self._sender is not None:
            await self._sender

    async def wait_frame(self, want: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first JSON frame (received so far or later) that satisfies ``want``.

        Raises:
            AssertionError: the connection closed without such a frame.
        """

        def found() -> dict[str, Any] | None:
            return next((f for f in self.frames if isinstance(f, dict) and want(f)), None)

        async with self._changed:
            await self._changed.wait_for(lambda: found() is not None or self.closed)
        frame = found()
        if frame is None:
            raise AssertionError(
                f"closed ({self.ws.close_code} {self.ws.close_reason!r}) before the frame; "
                f"got {self.control_frames()}"
            )
        return frame

    async def wait_closed(self) -> int | None:
        """Wait until the server closed the connection; the close code it sent."""
        if self._reader is not None:
            await self._reader
        await self.stop_audio()
        return self.ws.close_code

    def control_frames(self) -> list[dict[str, Any]]:
        """The JSON frames received so far."""
        return [f for f in self.frames if isinstance(f, dict)]

    def frames_after(self, want: Callable[[dict[str, Any]], bool]) -> list[Frame]:
        """Frames received after the first JSON frame that satisfies ``want``."""
        for index, frame in enumerate(self.frames):
            if isinstance(frame, dict) and want(frame):
                return self.frames[index + 1 :]
        raise AssertionError(f"no such frame among {self.control_frames()}")

    async def aclose(self) -> None:
        """Stop both tasks (used when a test fails half-way)."""
        for task in (self._sender, self._reader):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _send_silence(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = 0
        with contextlib.suppress(ConnectionClosed):
            while not self._stop_audio.is_set():
                await self.ws.send(SILENCE_FRAME)
                sent += 1
                # Paced against the start time, not frame to frame, so delays do not add up.
                await asyncio.sleep(max(0.0, t0 + sent * 0.02 - loop.time()))

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                frame: Frame = message if isinstance(message, bytes) else json.loads(message)
                async with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()
                if isinstance(frame, dict) and frame.get("type") == "mark":
                    # The server paces audio at real time with a small lead, so a mark
                    # arrives about when a real gateway would have finished playing it.
                    with contextlib.suppress(ConnectionClosed):
                        await self.send_json({"type": "mark", "name": frame.get("name")})
        except ConnectionClosed:
            pass
        finally:
            async with self._changed:
                self.closed = True
                self._changed.notify_all()
