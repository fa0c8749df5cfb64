"""A local Deepgram: ``/v1/listen`` (WebSocket) and ``/v1/speak`` (REST) with real message shapes.

Point the real SDK at it (``DEEPGRAM_BASE_URL=http://HOST:PORT``,
``DEEPGRAM_WS_URL=ws://HOST:PORT``, ``DEEPGRAM_API_KEY=<its key>``) and it behaves like
Deepgram: it checks ``Authorization: Token <key>`` (401 otherwise) and the query (400
on a missing model, an unknown parameter or an unsupported encoding/rate), transcribes
the audio it receives with the offline recogniser, so what was said matters, and speaks
with the offline TTS. A stream with neither audio nor a text message for 10 s is closed
with 1011 ``NET-0001``, as Deepgram does.

One aiohttp application serves both endpoints on one port: aiohttp can answer a
WebSocket upgrade with a plain HTTP 401/503 before accepting it (exactly what the SDK
sees from Deepgram), it closes with any code and reason, and one server means one port,
one authentication check and one set of fault knobs for both APIs.

For load tests, ``--scripted-transcripts`` (`ScriptedSpeech`) replaces recognition with
energy endpointing and sentences from a list, same protocol, a tiny fraction of the CPU;
``--cache-speech`` synthesizes each distinct ``/v1/speak`` text once.

Fault knobs (`SimFaults`, also ``realtime-voice simulate deepgram`` flags) may be
changed while it runs. `SimStats` counts what happened; `DeepgramSimulator.wait_for`
waits for a condition on them (tests wait on events, never on time).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from realtime_voice.providers.local_tts import SpeechSynthesizer
from realtime_voice.testing.deepgram_sim_listen import ListenSession, SegmentRecognizer
from realtime_voice.testing.deepgram_sim_query import ListenQuery, QueryError
from realtime_voice.testing.deepgram_sim_scripted import (
    DEFAULT_SENTENCES,
    ScriptedSpeech,
    load_sentences,
)
from realtime_voice.testing.deepgram_sim_speak import SpeechCache, handle_speak

__all__ = [
    "DEFAULT_API_KEY",
    "DeepgramSimulator",
    "ScriptedSpeech",
    "SimFaults",
    "SimStats",
    "add_arguments",
    "run",
]

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sim-deepgram-key"
"""The key the simulator accepts unless told otherwise."""


@dataclass
class SimFaults:
    """Fault knobs; change them at any time (they apply to what happens next).

    Attributes:
        close_after_s: close each stream with 1011 this many seconds after it opened.
        close_after_audio_s: close each stream with 1011 once it received this much audio
            (deterministic whatever the sending pace).
        close_connections: apply the two close knobs to the first N streams only.
        refuse_status: answer the WebSocket handshake with this HTTP status (401, 503...).
        refuse_count: refuse only the first N handshakes (None: all).
        stall: accept streams, then neither read nor send anything.
        result_delay_ms: hold every message back this long before sending it.
        idle_timeout_s: close with 1011 NET-0001 after this long without any message.
        tick_results_ms: benchmark mode: skip recognition and send one final result per
            this much audio, its transcript stamped with the send time
            (``tick N sent_ns=<CLOCK_MONOTONIC ns>``).
        speak_first_byte_delay_ms: wait this long before answering ``/v1/speak``.
        speak_fail_status: answer ``/v1/speak`` with this status (e.g. 500).
        speak_fail_count: fail only the first N requests (None: all).
        speak_abort_after_bytes: cut the connection after this many audio bytes.
        speak_realtime: stream ``/v1/speak`` audio no faster than real time.
    """

    close_after_s: float | None = None
    close_after_audio_s: float | None = None
    close_connections: int | None = None
    refuse_status: int | None = None
    refuse_count: int | None = None
    stall: bool = False
    result_delay_ms: int = 0
    idle_timeout_s: float = 10.0
    tick_results_ms: int | None = None
    speak_first_byte_delay_ms: int = 0
    speak_fail_status: int | None = None
    speak_fail_count: int | None = None
    speak_abort_after_bytes: int | None = None
    speak_realtime: bool = False


@dataclass
class SimStats:
    """What the simulator saw and did."""

    listen_connections: int = 0
    listen_refused: int = 0
    listen_closed: int = 0
    fault_closes: int = 0
    idle_timeouts: int = 0
    audio_bytes: int = 0
    keepalives: int = 0
    finalizes: int = 0
    close_streams: int = 0
    results_sent: int = 0
    speak_requests: int = 0
    speak_completed: int = 0
    speak_aborted: int = 0
    speak_failed: int = 0
    speak_cut: int = 0
    projects_requests: int = 0
    last_listen_query: dict[str, list[str]] = field(default_factory=dict)
    last_speak_query: dict[str, str] = field(default_factory=dict)


class DeepgramSimulator:
    """The simulator server.

    Args:
        api_key: the only key accepted.
        host: interface to listen on.
        port: TCP port (0: any free port).
        faults: fault knobs (default: none).
        recognizer: the offline recogniser; default: the process-wide Moonshine, loaded
            when the first stream needs it.
        synthesizer: the offline voice; default: piper/espeak-ng, loaded on first use.
        preload: load the recogniser and the voice in `start` (the CLI does).
        scripted: load mode: streams are endpointed on energy and "recognised" as the
            next sentence of a list (`ScriptedSpeech`), at a tiny fraction of the CPU.
        speech_cache: keep each ``/v1/speak`` answer's audio per text and format, so a
            load test pays the offline voice once per distinct sentence.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: SimFaults | None = None,
        recognizer: SegmentRecognizer | None = None,
        synthesizer: SpeechSynthesizer | None = None,
        preload: bool = False,
        scripted: ScriptedSpeech | None = None,
        speech_cache: bool = False,
    ) -> None:
        self.api_key = api_key
        self.faults = faults or SimFaults()
        self.stats = SimStats()
        self._host = host
        self._port = port
        self._recognizer = recognizer
        self._synthesizer = synthesizer
        self._preload = preload
        self.scripted = scripted
        self._speech_cache = SpeechCache() if speech_cache else None
        self._runner: web.AppRunner | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._sessions: set[ListenSession] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._stream_index = 0
        self.http_url = ""
        """``http://host:port`` once started (DEEPGRAM_BASE_URL)."""
        self.ws_url = ""
        """``ws://host:port`` once started (DEEPGRAM_WS_URL)."""

    async def start(self) -> tuple[str, str]:
        """Listen; return ``(http_url, ws_url)``."""
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="dg-sim"
        )
        if self._preload:
            loop = asyncio.get_running_loop()
            if self.scripted is None and self.faults.tick_results_ms is None:
                await loop.run_in_executor(self._executor, self._load_recognizer)
            await loop.run_in_executor(self._executor, self._load_synthesizer)
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        app.router.add_post("/v1/speak", self._speak)
        app.router.add_get("/v1/projects", self._projects)
        # Streams and requests are closed or cancelled by close(); never wait a minute.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        server = site._server  # private, but the only way to learn the port bound for port=0
        assert server is not None and isinstance(server, asyncio.Server)
        port = server.sockets[0].getsockname()[1]
        self.http_url = f"http://{self._host}:{port}"
        self.ws_url = f"ws://{self._host}:{port}"
        return self.http_url, self.ws_url

    async def close(self) -> None:
        """Close every stream (1001), then the server."""
        for session in list(self._sessions):
            await session.abort()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def __aenter__(self) -> DeepgramSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def changed(self) -> None:
        """Counters changed: wake `wait_for` callers."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, predicate: Callable[[SimStats], bool], within_s: float = 20.0) -> None:
        """Wait until ``predicate(stats)`` holds.

        Raises:
            TimeoutError: it did not within ``within_s`` seconds (a hung test fails).
        """
        async with asyncio.timeout(within_s):
            while not predicate(self.stats):
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    # ------------------------------------------------------------------ handlers

    def _denied(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "token" and key.strip() == self.api_key:
            return None
        return web.json_response(
            {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
             "request_id": str(uuid.uuid4())},
            status=401,
        )  # fmt: skip

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        faults = self.faults
        if faults.refuse_status is not None and (
            faults.refuse_count is None or self.stats.listen_refused < faults.refuse_count
        ):
            self.stats.listen_refused += 1
            self.changed()
            return web.json_response(
                {"err_code": "REFUSED", "err_msg": "simulated refusal"}, status=faults.refuse_status
            )
        denied = self._denied(request)
        if denied is not None:
            self.stats.listen_refused += 1
            self.changed()
            return denied
        try:
            single = {key: request.query[key] for key in request.query}
            query = ListenQuery.parse(single, request.query.getall("keyterm", []))
        except QueryError as exc:
            return web.json_response({"err_code": "Bad Request", "err_msg": str(exc)}, status=400)
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {"err_code": "Bad Request", "err_msg": "expected a WebSocket upgrade"}, status=400
            )
        await ws.prepare(request)
        index = self._stream_index
        self._stream_index += 1
        self.stats.listen_connections += 1
        self.stats.last_listen_query = {k: request.query.getall(k) for k in request.query}
        self.changed()
        assert self._executor is not None
        cheap = faults.tick_results_ms is not None or self.scripted is not None
        session = ListenSession(
            ws,
            request.transport,
            query,
            self,
            index,
            None if cheap else await self._recognizer_for_stream(),
            self._executor,
            None if cheap else _new_vad,
            self.scripted,
        )
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._handlers.discard(task)
            self.stats.listen_closed += 1
            self.changed()
        return ws

    async def _speak(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            return await handle_speak(request, self, self._synthesizer, self._speech_cache)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _projects(self, request: web.Request) -> web.Response:
        self.stats.projects_requests += 1
        self.changed()
        denied = self._denied(request)
        if denied is not None:
            return denied
        return web.json_response(
            {"projects": [{"project_id": "00000000-0000-4000-8000-000000000000",
                           "name": "Deepgram simulator"}]}
        )  # fmt: skip

    async def _recognizer_for_stream(self) -> SegmentRecognizer:
        if self._recognizer is None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._load_recognizer)
        assert self._recognizer is not None
        return self._recognizer

    def _load_recognizer(self) -> None:
        if self._recognizer is None:
            from realtime_voice.providers.moonshine import MoonshineRecognizer

            self._recognizer = MoonshineRecognizer.shared()

    def _load_synthesizer(self) -> None:
        if self._synthesizer is None:
            from realtime_voice.providers.local_tts import default_synthesizer

            self._synthesizer = default_synthesizer()


def _new_vad() -> Any:
    from realtime_voice.providers.vad import VoiceActivityDetector

    return VoiceActivityDetector(16000)


# ---------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``realtime-voice simulate deepgram``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8766, help="TCP port (default 8766)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key to accept")
    load = parser.add_argument_group("load mode")
    load.add_argument(
        "--scripted-transcripts",
        action="store_true",
        help="endpoint on energy and answer each utterance with the next scripted sentence "
        "(no recognition: cheap enough for hundreds of streams)",
    )
    load.add_argument(
        "--transcripts-file",
        type=Path,
        metavar="PATH",
        help="the scripted sentences, one per line (default: restaurant questions)",
    )
    load.add_argument(
        "--speech-threshold",
        type=float,
        default=0.01,
        metavar="RMS",
        help="RMS (0..1) above which scripted mode hears speech (default 0.01)",
    )
    load.add_argument(
        "--cache-speech",
        action="store_true",
        help="synthesize each distinct /v1/speak text once and replay it",
    )
    faults = parser.add_argument_group("fault knobs")
    faults.add_argument(
        "--close-after-s",
        type=float,
        metavar="S",
        help="close each stream with 1011 after S seconds",
    )
    faults.add_argument(
        "--close-after-audio-s",
        type=float,
        metavar="S",
        help="close each stream with 1011 after S seconds of audio",
    )
    faults.add_argument(
        "--close-connections",
        type=int,
        metavar="N",
        help="apply the close knobs to the first N streams only",
    )
    faults.add_argument(
        "--refuse-status",
        type=int,
        metavar="HTTP",
        help="refuse WebSocket handshakes with this status (401, 503)",
    )
    faults.add_argument(
        "--refuse-count", type=int, metavar="N", help="refuse only the first N handshakes"
    )
    faults.add_argument(
        "--stall", action="store_true", help="accept streams, then read and send nothing"
    )
    faults.add_argument(
        "--result-delay-ms", type=int, default=0, metavar="MS", help="delay every message by MS"
    )
    faults.add_argument(
        "--idle-timeout-s",
        type=float,
        default=10.0,
        metavar="S",
        help="NET-0001 idle close (default 10 s, like Deepgram)",
    )
    faults.add_argument(
        "--tick-results-ms",
        type=int,
        metavar="MS",
        help="benchmark mode: a stamped final result per MS of audio",
    )
    faults.add_argument(
        "--speak-first-byte-delay-ms",
        type=int,
        default=0,
        metavar="MS",
        help="delay /v1/speak answers by MS",
    )
    faults.add_argument(
        "--speak-fail-status",
        type=int,
        metavar="HTTP",
        help="fail /v1/speak with this status (e.g. 500)",
    )
    faults.add_argument(
        "--speak-fail-count", type=int, metavar="N", help="fail only the first N /v1/speak requests"
    )
    faults.add_argument(
        "--speak-abort-after-bytes",
        type=int,
        metavar="N",
        help="cut /v1/speak connections after N audio bytes",
    )
    faults.add_argument("--speak-realtime", action="store_true",
                        help="stream /v1/speak audio no faster than real time")  # fmt: skip


def _faults_from(args: argparse.Namespace) -> SimFaults:
    return SimFaults(
        close_after_s=args.close_after_s,
        close_after_audio_s=args.close_after_audio_s,
        close_connections=args.close_connections,
        refuse_status=args.refuse_status,
        refuse_count=args.refuse_count,
        stall=args.stall,
        result_delay_ms=args.result_delay_ms,
        idle_timeout_s=args.idle_timeout_s,
        tick_results_ms=args.tick_results_ms,
        speak_first_byte_delay_ms=args.speak_first_byte_delay_ms,
        speak_fail_status=args.speak_fail_status,
        speak_fail_count=args.speak_fail_count,
        speak_abort_after_bytes=args.speak_abort_after_bytes,
        speak_realtime=args.speak_realtime,
    )


def _scripted_from(args: argparse.Namespace) -> ScriptedSpeech | None:
    if not args.scripted_transcripts:
        return None
    sentences = DEFAULT_SENTENCES
    if args.transcripts_file is not None:
        lines = args.transcripts_file.read_text(encoding="utf-8").splitlines()
        sentences = load_sentences(lines)
    return ScriptedSpeech(sentences=sentences, threshold=args.speech_threshold)


async def _serve(args: argparse.Namespace) -> None:
    faults = _faults_from(args)
    sim = DeepgramSimulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        faults=faults,
        preload=faults.tick_results_ms is None,
        scripted=_scripted_from(args),
        speech_cache=args.cache_speech,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    http_url, ws_url = await sim.start()
    print(f"Deepgram simulator on {http_url} (REST) and {ws_url} (WebSocket)", flush=True)
    print(f"  DEEPGRAM_BASE_URL={http_url} DEEPGRAM_WS_URL={ws_url} "
          f"DEEPGRAM_API_KEY={args.api_key}", flush=True)  # fmt: skip
    try:
        await stop.wait()
    finally:
        await sim.close()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; exit code 0."""
    try:
        asyncio.run(_serve(args))
    except ValueError as exc:  # a bad transcripts file or threshold
        print(f"deepgram simulator: {exc}", flush=True)
        return 2
    except OSError as exc:
        print(f"deepgram simulator: {exc}", flush=True)
        return 1
    return 0


def main() -> int:
    """``python -m realtime_voice.testing.deepgram_sim`` (same flags as the CLI)."""
    parser = argparse.ArgumentParser(prog="deepgram_sim", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
