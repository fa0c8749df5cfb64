"""A whole local stack for load tests: the server and both provider simulators, as processes.

`LocalStack` starts, each as its own child process (so none shares another's event loop,
GIL or CPU accounting):

- ``realtime-voice simulate deepgram`` (``/v1/listen`` and ``/v1/speak``),
- ``realtime-voice simulate openai`` (``/v1/chat/completions``),
- ``realtime-voice serve`` with the real Deepgram and OpenAI SDKs pointed at them
  (``DEEPGRAM_API_KEY``/``DEEPGRAM_BASE_URL``/``DEEPGRAM_WS_URL``,
  ``OPENAI_API_KEY``/``OPENAI_BASE_URL``),

on free loopback ports, with a fresh SQLite database and record spool under the output
directory and every child's output in a log file there. It waits until the server
answers its health check and each simulator accepts connections, and on exit sends
SIGTERM to each child and waits for it (killing it after a timeout).

``engines="offline"`` starts no simulator: the server runs its offline engines.

Use from Python (the locust runner and the capacity benchmark do)::

    with LocalStack(Path("out"), llm_first_token_ms=300) as stack:
        print(stack.http_url, stack.media_url, stack.server_pid)

or from a shell, until Ctrl-C::

    python loadtests/stack.py --out /tmp/stack --llm-first-token-ms 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from realtime_voice.testing.processes import child_environment, cli_command, free_ports

__all__ = [
    "DEEPGRAM_KEY",
    "HEALTH_PATH",
    "OPENAI_KEY",
    "LocalStack",
    "StackError",
    "add_stack_arguments",
    "cli_command",
    "free_ports",
    "main",
    "stack_options",
]

HEALTH_PATH = "/api/voice/realtime/health"
DEEPGRAM_KEY = "sim-deepgram-load-key"
"""The key the Deepgram simulator accepts and the server is given."""
OPENAI_KEY = "sim-openai-load-key"
"""The bearer token the OpenAI simulator accepts and the server is given."""

Engines = Literal["simulated", "offline"]

# Variables the server reads: the children must see only what the stack sets, never a
# developer's shell settings (a stray DEEPGRAM_API_KEY would send load to the real API).
class StackError(RuntimeError):
    """A child exited or did not get ready in time; the message names it and its log."""


class _Child:
    """One child process with its output in ``<out_dir>/<name>.log``."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path):
        self.name = name
        self.log_path = cwd / f"{name}.log"
        log: IO[bytes]
        with self.log_path.open("wb") as log:
            # A file, never a pipe: nobody reads a pipe during a load run, and a full one
            # would block the child's logging and so the child.
            self.proc = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_running(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise StackError(f"{self.name} exited with {code}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self, timeout_s: float) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; the exit status."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def _wait_port(child: _Child, port: int, deadline: float) -> None:
    while True:
        child.check_running()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise StackError(
                    f"{child.name} did not accept connections on port {port}:\n{child.tail()}"
                ) from None
            time.sleep(0.1)


def _wait_healthy(child: _Child, url: str, deadline: float) -> dict[str, object]:
    last = "no answer"
    # The loopback must never go through a proxy a developer's shell configured.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        child.check_running()
        try:
            with opener.open(url, timeout=2.0) as resp:
                body = json.loads(resp.read())
                if resp.status == 200 and isinstance(body, dict):
                    return body
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise StackError(f"{child.name} never became healthy ({last}):\n{child.tail()}")
        time.sleep(0.2)


class LocalStack:
    """The server plus the Deepgram and OpenAI simulators, each a child process.

    Args:
        out_dir: where the database, spool and one log per child go (created).
        stt_first_result_ms: the Deepgram simulator holds every ``/v1/listen`` message
            back this long (Deepgram's own recognition latency).
        llm_first_token_ms: the OpenAI simulator waits this long before the first token.
        tts_first_byte_ms: the Deepgram simulator waits this long before the first byte of
            each ``/v1/speak`` answer.
        engines: ``simulated`` (Deepgram and OpenAI through the simulators) or
            ``offline`` (no simulators; the server's embedded engines).
        server_env: extra variables for the server (they win over the stack's).
        max_calls: ``VOICE_MAX_CALLS``.
        scripted_stt: run the Deepgram simulator in its scripted load mode (energy
            endpointing, transcripts from a list) instead of real recognition. Default:
            True with ``engines="simulated"``.
        transcripts: the sentences the scripted mode hands out in turn (default: the
            simulator's restaurant questions).
        cache_speech: the Deepgram simulator synthesizes each distinct ``/v1/speak`` text
            once (its offline voice would otherwise out-spend the server).
        ready_timeout_s: how long each child may take to get ready.
        stop_timeout_s: how long each child may take to exit after SIGTERM.

    Attributes (after ``__enter__``): ``http_url`` (``http://127.0.0.1:PORT``),
    ``media_url`` (``ws://127.0.0.1:PORT``), ``server_pid``, ``deepgram_pid`` and
    ``openai_pid`` (None with offline engines), ``deepgram_url``, ``openai_url``,
    ``out_dir``, ``logs`` (child name → log path).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        stt_first_result_ms: float = 0,
        llm_first_token_ms: float = 0,
        tts_first_byte_ms: float = 0,
        engines: Engines = "simulated",
        server_env: Mapping[str, str] | None = None,
        max_calls: int = 1000,
        scripted_stt: bool | None = None,
        transcripts: Sequence[str] | None = None,
        cache_speech: bool = True,
        ready_timeout_s: float = 180.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        if engines not in ("simulated", "offline"):
            raise ValueError(f"engines must be 'simulated' or 'offline', got {engines!r}")
        self.out_dir = Path(out_dir)
        self.stt_first_result_ms = stt_first_result_ms
        self.llm_first_token_ms = llm_first_token_ms
        self.tts_first_byte_ms = tts_first_byte_ms
        self.engines: Engines = engines
        self.server_env = dict(server_env or {})
        self.max_calls = max_calls
        # Real recognition of hundreds of streams would measure the simulator, not us.
        self.scripted_stt = engines == "simulated" if scripted_stt is None else scripted_stt
        self.transcripts = None if transcripts is None else tuple(transcripts)
        self.cache_speech = cache_speech
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.http_url = ""
        self.media_url = ""
        self.deepgram_url: str | None = None
        self.openai_url: str | None = None
        self.server_pid = 0
        self.deepgram_pid: int | None = None
        self.openai_pid: int | None = None
        self.logs: dict[str, Path] = {}
        self._children: list[_Child] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every child and wait until all are ready.

        Raises:
            StackError: a child exited or did not get ready in ``ready_timeout_s``
                (everything already started is stopped first).
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the server first (it drains its calls), then the simulators."""
        children, self._children = self._children, []
        for child in children:  # server first: it still talks to the simulators
            child.terminate(self.stop_timeout_s)

    def _start(self) -> None:
        dg_port, oa_port, http_port, media_port = free_ports(4)
        base = child_environment()
        env = dict(base)
        deadline = time.monotonic() + self.ready_timeout_s
        pending: list[tuple[_Child, int]] = []
        if self.engines == "simulated":
            deepgram = self._spawn("deepgram", self._deepgram_args(dg_port), base)
            openai = self._spawn("openai", self._openai_args(oa_port), base)
            self.deepgram_pid, self.openai_pid = deepgram.pid, openai.pid
            self.deepgram_url = f"http://127.0.0.1:{dg_port}"
            self.openai_url = f"http://127.0.0.1:{oa_port}/v1"
            pending += [(deepgram, dg_port), (openai, oa_port)]
            env.update(
                DEEPGRAM_API_KEY=DEEPGRAM_KEY,
                DEEPGRAM_BASE_URL=self.deepgram_url,
                DEEPGRAM_WS_URL=f"ws://127.0.0.1:{dg_port}",
                OPENAI_API_KEY=OPENAI_KEY,
                OPENAI_BASE_URL=self.openai_url,
            )
        env.update(
            VOICE_HTTP_HOST="127.0.0.1",
            VOICE_MEDIA_HOST="127.0.0.1",
            VOICE_HTTP_PORT=str(http_port),
            VOICE_MEDIA_PORT=str(media_port),
            VOICE_PUBLIC_MEDIA_URL=f"ws://127.0.0.1:{media_port}",
            DATABASE_URL=f"sqlite:///{(self.out_dir / 'calls.db').resolve()}",
            VOICE_SPOOL_DIR=str((self.out_dir / "spool").resolve()),
            VOICE_MAX_CALLS=str(self.max_calls),
            # All load comes from 127.0.0.1: a per-address limit would refuse it.
            VOICE_CONNECTIONS_PER_IP_PER_MINUTE="0",
            VOICE_LOG_LEVEL="warning",
            VOICE_DRAIN_TIMEOUT="5",
        )
        env.update(self.server_env)
        # The simulators come up while the server loads its models; readiness is
        # checked afterwards, so start-up costs the slowest child, not the sum.
        server = self._spawn("server", ["serve"], env)
        self.server_pid = server.pid
        for child, port in pending:
            _wait_port(child, port, deadline)
        _wait_healthy(server, f"http://127.0.0.1:{http_port}{HEALTH_PATH}", deadline)
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.media_url = f"ws://127.0.0.1:{media_port}"

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> _Child:
        child = _Child(name, cli_command(*args), env, self.out_dir)
        # Stop order is the reverse of start order except that the server goes first.
        if name == "server":
            self._children.insert(0, child)
        else:
            self._children.append(child)
        self.logs[name] = child.log_path
        return child

    def _deepgram_args(self, port: int) -> list[str]:
        args = [
            "simulate", "deepgram", "--port", str(port), "--api-key", DEEPGRAM_KEY,
            "--result-delay-ms", str(round(self.stt_first_result_ms)),
            "--speak-first-byte-delay-ms", str(round(self.tts_first_byte_ms)),
        ]  # fmt: skip
        if self.scripted_stt:
            args.append("--scripted-transcripts")
            if self.transcripts is not None:
                path = self.out_dir / "transcripts.txt"
                path.write_text("\n".join(self.transcripts) + "\n", encoding="utf-8")
                args += ["--transcripts-file", str(path)]
        if self.cache_speech:
            args.append("--cache-speech")
        return args

    def _openai_args(self, port: int) -> list[str]:
        return [
            "simulate", "openai", "--port", str(port), "--api-key", OPENAI_KEY,
            "--first-token-delay-ms", str(self.llm_first_token_ms),
        ]  # fmt: skip


# ---------------------------------------------------------------------- command line


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engines`` and the simulators' delays, for every script that starts a stack."""
    group = parser.add_argument_group("stack")
    group.add_argument(
        "--engines",
        choices=("simulated", "offline"),
        default="simulated",
        help="simulated: Deepgram and OpenAI simulators (default); offline: embedded engines",
    )
    group.add_argument(
        "--stt-first-result-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="the Deepgram simulator holds every /v1/listen message back MS (default 0)",
    )
    group.add_argument(
        "--llm-first-token-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="the OpenAI simulator waits MS before each reply's first token (default 0)",
    )
    group.add_argument(
        "--tts-first-byte-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="the Deepgram simulator waits MS before each /v1/speak answer (default 0)",
    )
    group.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help="an extra variable for the server (repeatable), e.g. VOICE_LOG_LEVEL=info",
    )


def stack_options(args: argparse.Namespace) -> dict[str, Any]:
    """`LocalStack` keyword arguments from the flags of `add_stack_arguments`."""
    return {
        "engines": args.engines,
        "stt_first_result_ms": args.stt_first_result_ms,
        "llm_first_token_ms": args.llm_first_token_ms,
        "tts_first_byte_ms": args.tts_first_byte_ms,
        "server_env": dict(args.server_env),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python loadtests/stack.py --out DIR``: start the stack, print its URLs, wait for ^C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="output directory (logs, DB)")
    add_stack_arguments(parser)
    parser.add_argument("--max-calls", type=int, default=1000)
    parser.add_argument(
        "--recognise",
        action="store_true",
        help="the Deepgram simulator recognises speech for real (not the scripted mode)",
    )
    args = parser.parse_args(argv)
    stack = LocalStack(
        args.out,
        max_calls=args.max_calls,
        scripted_stt=False if args.recognise else None,
        **stack_options(args),
    )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        with stack:
            print(f"HTTP   {stack.http_url}  (server pid {stack.server_pid})", flush=True)
            print(f"media  {stack.media_url}", flush=True)
            if stack.deepgram_url is not None:
                print(f"deepgram {stack.deepgram_url}  (pid {stack.deepgram_pid})", flush=True)
                print(f"openai   {stack.openai_url}  (pid {stack.openai_pid})", flush=True)
            print(f"logs   {stack.out_dir}/*.log; Ctrl-C stops", flush=True)
            while not stop:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
