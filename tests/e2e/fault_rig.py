"""Harness of the fault-injection tests: a real server with its simulators, calls, leak checks.

A `Rig` is one `VoiceServer` built from settings, optionally in front of the Deepgram and
OpenAI simulators (the real SDKs talk to them, so faults arrive through real client code).
`Rig.place` makes one call with the `SimulatedCaller` and checks that the call left
nothing behind once it ended: the manager released its session, no Deepgram bridge
thread is alive and no task running call code (session, providers, responder) is still
pending. `Rig.stored` reads the call back through `CallStore`, as the calls API does.

`SpeakingGateway` is a bare bridge gateway for what the simulated caller never does:
vanish without a close frame, or close in the middle of its own sentence.

The `make_rig` fixture also fails a test in which anything was logged with a traceback or
reached the event loop's exception handler (an exception nobody handled).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.storage.models import Call
from realtime_voice.testing.call_report import CallReport, TimelineEvent
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.deepgram_sim import DeepgramSimulator, SimFaults
from realtime_voice.testing.openai_sim import Faults, OpenAISimulator

from .conftest import e2e_settings
from .process_helpers import BridgeGateway, post_inbound

__all__ = [
    "CALL_DEADLINE_S",
    "GREETING",
    "SIM_KEY",
    "MakeRig",
    "Rig",
    "SpeakingGateway",
    "bridge_threads",
    "call_tasks",
    "make_rig",
]

SIM_KEY = "sim-deepgram-key-faults"

GREETING = "Hi there."
"""A short greeting (the ``greeting_text`` parameter): calls reach the fault sooner."""

CALL_DEADLINE_S = 60.0
"""Bound on waiting for one call: exceeding it means the call hung, not that it was slow."""

# Where the code of a call's own tasks lives (session, media handler, providers, responder);
# the server's long-lived tasks (recorder, health checks, webhooks) are elsewhere.
_CALL_CODE = ("realtime_voice/session/", "realtime_voice/server/media.py",
              "realtime_voice/providers/", "ai_pipeline/")  # fmt: skip
_SERVER_CODE = ("realtime_voice/providers/deepgram_health.py",)


def bridge_threads() -> list[str]:
    """Names of the Deepgram bridge threads alive in this process."""
    return [t.name for t in threading.enumerate() if t.name.startswith("deepgram-stt-")]


def call_tasks() -> list[str]:
    """Pending tasks running call code (a session's, its providers' or its responder's)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if task.done() or filename.endswith(_SERVER_CODE):
            continue
        if any(part in filename for part in _CALL_CODE):
            found.append(f"{task.get_name()}: {code.co_qualname if code else '?'}")
    return found


@dataclass
class Rig:
    """One server, the simulators in front of it, and the calls placed on it.

    Attributes:
        server: the running server.
        deepgram: the Deepgram simulator, when the server uses Deepgram.
        llm: the OpenAI-compatible simulator, when the server uses a chat model.
    """

    server: VoiceServer
    deepgram: DeepgramSimulator | None = None
    llm: OpenAISimulator | None = None

    @property
    def http_url(self) -> str:
        """The server's HTTP control plane."""
        return f"http://127.0.0.1:{self.server.http_port}"

    async def call(
        self,
        lines: Sequence[CallerLine],
        *,
        params: Mapping[str, str] | None = None,
        on_event: Callable[[TimelineEvent], None] | None = None,
        **options: Any,
    ) -> tuple[CallReport, Call]:
        """Place one call (see `place`); the caller's report and the stored call."""
        report = await self.place(lines, params=params, on_event=on_event, **options)
        return report, await self.stored(report.call_id)

    async def place(
        self,
        lines: Sequence[CallerLine],
        *,
        params: Mapping[str, str] | None = None,
        on_event: Callable[[TimelineEvent], None] | None = None,
        **options: Any,
    ) -> CallReport:
        """Place one call and wait until the server let go of it (see `released`).

        The greeting is `GREETING`, the caller hangs up soon after the bot's last reply,
        and the bot's side is not transcribed (tests check the stored turns, which are
        exact), unless ``params``/``options`` say otherwise.
        """
        opts: dict[str, Any] = {
            "max_call_s": CALL_DEADLINE_S,
            "end_after_last_line_s": 1.0,
            "transcribe_bot": False,
            "custom_parameters": {"greeting_text": GREETING, **(params or {})},
            "on_event": on_event,
            **options,
        }
        report = await SimulatedCaller(CallOptions(http_url=self.http_url, **opts)).run(lines)
        await self.released(report.call_id)
        return report

    async def released(self, call_id: str) -> None:
        """Wait for the call's end; check that it left nothing behind."""
        async with asyncio.timeout(CALL_DEADLINE_S):
            await self.server.manager.wait_idle()
        manager = self.server.manager
        assert manager.get(call_id) is None
        assert manager.active_calls == 0
        assert bridge_threads() == []
        assert call_tasks() == []

    async def stored(self, call_id: str) -> Call:
        """The call as the database has it, once every record given so far is written."""
        await self.server.recorder.flush()
        call = await self.server.call_store.get_call(call_id)
        assert call is not None, f"call {call_id} is not in the database"
        return call

    async def answer(self, call_id: str) -> str:
        """Answer ``call_id`` through the inbound webhook; the media URL handed out."""
        status, body = await post_inbound(self.server.http_port, call_id)
        assert status == 200, body
        url = body["media"]["url"]
        assert isinstance(url, str)
        return url


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(
    engines: SpeechEngines, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[MakeRig]:
    """Start rigs; stop them afterwards and fail on unhandled exceptions or leaks.

    ``make_rig(deepgram=SimFaults(...), llm=Faults(...), llm_token_delay_ms=..., **settings)``:
    a faults object puts that simulator in front of the server (``SimFaults()`` or
    ``Faults()`` for a healthy one); without either the server runs on the process's
    shared offline engines. ``settings`` override `e2e_settings`.
    """
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    servers: list[VoiceServer] = []
    sims: list[DeepgramSimulator | OpenAISimulator] = []

    async def make(
        *,
        deepgram: SimFaults | None = None,
        llm: Faults | None = None,
        llm_token_delay_ms: float = 15.0,
        **settings: Any,
    ) -> Rig:
        dg_sim = llm_sim = None
        if deepgram is not None:
            dg_sim = DeepgramSimulator(api_key=SIM_KEY, faults=deepgram)
            sims.append(dg_sim)
            http_url, ws_url = await dg_sim.start()
            settings.update(
                deepgram_api_key=SIM_KEY, deepgram_base_url=http_url, deepgram_ws_url=ws_url
            )
        if llm is not None:
            llm_sim = OpenAISimulator(faults=llm, token_delay_ms=llm_token_delay_ms)
            sims.append(llm_sim)
            settings.update(openai_base_url=await llm_sim.start(), openai_api_key="sk-test")
        config = e2e_settings(**settings)
        own = deepgram is not None or llm is not None
        server = VoiceServer(config, engines=build_engines(config) if own else engines)
        await server.start()
        servers.append(server)
        return Rig(server, dg_sim, llm_sim)

    try:
        yield make
    finally:
        for server in servers:
            await server.stop(drain_timeout_s=2.0)
        for sim in sims:
            await sim.close()
        loop.set_exception_handler(previous)
    assert not unhandled, f"exceptions nobody handled: {unhandled}"
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not tracebacks, f"logged with a traceback: {tracebacks}"
    assert bridge_threads() == []


class SpeakingGateway(BridgeGateway):
    """A `BridgeGateway` whose caller can speak, vanish, or hang up mid-sentence.

    Once `say` queued some speech, the 20 ms frames it streams carry it; silence again
    after. Marks are echoed at once and every frame the server sent is kept, in order.

    Args:
        ws: the open media WebSocket.
    """

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.speech_frames_sent = 0
        self._speech = bytearray()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, url: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[SpeakingGateway]:
        """Connect, send ``start`` (``params`` as its custom parameters), stream and read
        until the block ends."""
        async with connect(url, proxy=None, compression=None) as ws:
            gateway = cls(ws)
            await gateway.send_json({"type": "start", "customParameters": dict(params or {})})
            gateway.start()
            try:
                yield gateway
            finally:
                await gateway.aclose()

    def say(self, mulaw: bytes) -> None:
        """Speak ``mulaw`` (8 kHz) from the next frame on."""
        self._speech += mulaw

    async def wait_for(self, want: Callable[[], bool]) -> None:
        """Wait until ``want()`` holds (checked whenever a frame goes out or comes in)."""
        async with self._changed:
            await self._changed.wait_for(want)

    def marks(self) -> list[str]:
        """Names of the marks the server sent, in order."""
        return [str(f.get("name")) for f in self.control_frames() if f.get("type") == "mark"]

    def audio_frames_after_mark(self, name: str) -> int:
        """Audio frames received after the mark called ``name`` (0 before it)."""
        if name not in self.marks():
            return 0
        after = self.frames_after(lambda f: f == {"type": "mark", "name": name})
        return sum(isinstance(f, bytes) for f in after)

    def vanish(self) -> None:
        """Drop the TCP connection: no close frame, no FIN handshake, nothing more."""
        self.ws.transport.abort()

    async def _send_silence(self) -> None:
        # The gateway's audio stream, with the caller's speech in it when there is some.
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = 0
        with contextlib.suppress(ConnectionClosed):
            while not self._stop_audio.is_set():
                frame = bytes(self._speech[:160]).ljust(160, b"\xff")  # 0xFF: mu-law silence
                if self._speech:
                    del self._speech[:160]
                    self.speech_frames_sent += 1
                await self.ws.send(frame)
                sent += 1
                async with self._changed:
                    self._changed.notify_all()
                # Paced against the start, not frame to frame, so delays do not add up.
                await asyncio.sleep(max(0.0, t0 + sent * 0.02 - loop.time()))
