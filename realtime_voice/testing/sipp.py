"""Running SIPp (Debian ``sip-tester`` 3.6.1) scenarios as a test peer.

SIPp drives SIP call flows that a softphone peer cannot produce on demand: CANCEL races,
hold re-INVITEs, a BYE right after the ACK, retransmitted INVITEs, and load. Debian's
build has no TLS (``-t l1`` is refused), so these runs use TCP (``t1``) or UDP (``u1``).

Everything runs on 127.0.0.1 with ports the caller picks (use `free_port`): SIPp's own
defaults (5060 for SIP, 6000 for media) would collide between parallel runs. Each run
writes its message trace, error log and statistics CSV into ``workdir``; the verdict
(`SippResult.successful` / ``failed``) comes from the statistics file, the exit code
from the process (SIPp exits 0 when every call succeeded, 1 when any failed, and
something else on a fatal error). ``-bg`` is never used: it daemonises and loses the
exit code.

The scenarios shipped with this module are in `SCENARIO_DIR` (see each file's header for
its keys). Media files named by a scenario (``rtp_stream``, ``play_pcap_audio``) are
read relative to SIPp's working directory, so `run_sipp` links ``files`` there.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import shutil
import signal
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SCENARIO_DIR",
    "SHIPPED_MEDIA_DIR",
    "SIPP",
    "SippError",
    "SippResult",
    "free_port",
    "run_sipp",
    "run_sipp_sync",
    "sipp_available",
    "sipp_command",
    "write_ulaw_wav",
]

SIPP = "sipp"
"""The SIPp executable looked up on ``PATH``."""

SCENARIO_DIR = Path(__file__).with_name("sipp_scenarios")
"""The XML scenarios that come with this module."""

SHIPPED_MEDIA_DIR = Path("/usr/share/sip-tester")
"""Where Debian's ``sip-tester`` installs its pcaps (``dtmf_2833_<digit>.pcap``, ``g711a.pcap``)."""

_STDOUT_LIMIT = 256 * 1024  # SIPp's final screen is a few kB; keep only the tail of more


class SippError(RuntimeError):
    """SIPp could not be run (missing binary, run over its time bound)."""


@dataclass(frozen=True)
class SippResult:
    """What one SIPp run did.

    Attributes:
        returncode: SIPp's exit code (0: all calls succeeded; 1: some failed; 97/99/-N:
            fatal error or killed).
        successful: calls SIPp counted successful (from the statistics CSV; -1 if absent).
        failed: calls SIPp counted failed (-1 if absent).
        stats: the statistics CSV text ("" if SIPp wrote none).
        messages_log: the ``-trace_msg`` file (every SIP message sent and received).
        errors_log: the ``-trace_err`` file (unexpected messages, scenario errors).
        screen: SIPp's stdout and stderr (its final screen, warnings).
    """

    returncode: int
    successful: int
    failed: int
    stats: str
    messages_log: Path
    errors_log: Path
    screen: str

    @property
    def ok(self) -> bool:
        """Exit code 0 and no failed call."""
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def describe(self) -> str:
        """A multi-line summary for assertion messages: counts, errors and the SIP trace."""

        def tail(path: Path, limit: int = 6000) -> str:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                return "(none)"
            return text[-limit:]

        return (
            f"sipp rc={self.returncode} successful={self.successful} failed={self.failed}\n"
            f"--- screen ---\n{self.screen[-3000:]}\n"
            f"--- errors ---\n{tail(self.errors_log)}\n"
            f"--- messages ---\n{tail(self.messages_log)}"
        )


def sipp_available() -> bool:
    """Whether the SIPp binary is on ``PATH``."""
    return shutil.which(SIPP) is not None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel reports free on 127.0.0.1 for ``kind`` (TCP or UDP).

    For a media port SIPp also uses port+2 (RTCP/echo); pick with `free_port` and accept
    the small race of a port taken between the probe and SIPp's bind.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_ulaw_wav(path: Path, samples: np.ndarray, sample_rate: int = 8000) -> Path:
    """Write mono PCM16 ``samples`` as a G.711 µ-law WAV (format tag 7), for ``rtp_stream``.

    SIPp's ``rtp_stream`` sends the file's data chunk as PCMU payload unchanged (it skips
    the WAV header), so the file must already be 8 kHz µ-law.
    """
    pcm = np.asarray(samples, dtype=np.int16).astype(np.int32)
    # G.711 µ-law (ITU-T G.711, the Sun reference algorithm): bias, segment, invert.
    sign = np.where(pcm < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    ulaw = (~(sign | (exponent << 4) | mantissa)) & 0xFF
    data = ulaw.astype(np.uint8).tobytes()
    fmt = struct.pack("<HHIIHHH", 7, 1, sample_rate, sample_rate, 1, 8, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def sipp_command(
    target: str | None,
    *,
    scenario: Path | None = None,
    builtin: str | None = None,
    transport: str = "t1",
    local_port: int,
    media_port: int,
    calls: int = 1,
    rate: float | None = None,
    concurrent: int | None = None,
    service: str | None = None,
    duration_ms: int | None = None,
    keys: Mapping[str, str] | None = None,
    timeout_s: float,
    workdir: Path,
    name: str,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The SIPp command line `run_sipp` uses (exposed for debugging and for servers).

    Exactly one of ``scenario`` (an XML file) and ``builtin`` (``uac``, ``uas``, ...) is
    given. ``target`` is ``host:port`` for a client scenario and None for a server.
    """
    if (scenario is None) == (builtin is None):
        raise ValueError("give exactly one of scenario= and builtin=")
    args = [SIPP]
    args += ["-sf", str(scenario)] if scenario is not None else ["-sn", str(builtin)]
    if target is not None:
        args.append(target)
    args += [
        "-t", transport,
        "-i", "127.0.0.1",
        "-mi", "127.0.0.1",
        "-p", str(local_port),
        "-mp", str(media_port),
        "-m", str(calls),
        "-nostdin",
        # The global -timeout is the hard bound; -timeout_error makes hitting it a failure
        # (exit code != 0) instead of a quiet stop.
        "-timeout", f"{max(1, int(timeout_s))}s",
        "-timeout_error",
        "-trace_msg", "-message_file", str(workdir / f"{name}.messages.log"),
        "-trace_err", "-error_file", str(workdir / f"{name}.errors.log"),
        "-trace_stat", "-stf", str(workdir / f"{name}.stats.csv"),
        "-trace_screen", "-screen_file", str(workdir / f"{name}.screen.log"),
    ]  # fmt: skip
    if rate is not None:
        args += ["-r", f"{rate:g}"]
    if concurrent is not None:
        args += ["-l", str(concurrent)]
    if service is not None:
        args += ["-s", service]
    if duration_ms is not None:
        args += ["-d", str(duration_ms)]
    for key, value in {"caller": "sipp", **(keys or {})}.items():
        args += ["-key", key, value]
    args += list(extra_args)
    return args


def _read_counts(stats_file: Path) -> tuple[int, int, str]:
    try:
        text = stats_file.read_text(errors="replace")
    except OSError:
        return -1, -1, ""
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    if len(rows) < 2:
        return -1, -1, text
    header, last = rows[0], rows[-1]
    values = dict(zip(header, last, strict=False))
    try:
        return int(values["SuccessfulCall(C)"]), int(values["FailedCall(C)"]), text
    except (KeyError, ValueError):
        return -1, -1, text


def _prepare(
    scenario: Path | str, workdir: Path, name: str | None, files: Mapping[str, Path]
) -> tuple[Path | None, str | None, str]:
    """(scenario file, built-in name, log label), with ``workdir`` made and ``files`` linked."""
    workdir.mkdir(parents=True, exist_ok=True)
    _link_files(workdir, files)
    if isinstance(scenario, Path) or str(scenario).endswith(".xml"):
        scenario_path = Path(scenario).resolve()
        return scenario_path, None, name or scenario_path.stem
    return None, str(scenario), name or str(scenario)


def _link_files(workdir: Path, files: Mapping[str, Path]) -> None:
    for name, source in files.items():
        link = workdir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(source).resolve())


def _result(workdir: Path, name: str, returncode: int, screen: str) -> SippResult:
    successful, failed, stats = _read_counts(workdir / f"{name}.stats.csv")
    return SippResult(
        returncode=returncode,
        successful=successful,
        failed=failed,
        stats=stats,
        messages_log=workdir / f"{name}.messages.log",
        errors_log=workdir / f"{name}.errors.log",
        screen=screen,
    )


async def run_sipp(
    scenario: Path | str,
    target: str | None,
    *,
    transport: str = "t1",
    local_port: int | None = None,
    media_port: int | None = None,
    calls: int = 1,
    rate: float | None = None,
    concurrent: int | None = None,
    service: str | None = None,
    duration_ms: int | None = None,
    keys: Mapping[str, str] | None = None,
    files: Mapping[str, Path] | None = None,
    timeout_s: float,
    workdir: Path,
    name: str | None = None,
    extra_args: Sequence[str] = (),
    started: asyncio.Event | None = None,
) -> SippResult:
    """Run one SIPp scenario to completion and report what it did.

    Args:
        scenario: an XML file, or the name of a built-in scenario (``"uas"``, ``"uac"``).
        target: ``host:port`` to call (client scenarios); None for a server scenario.
        transport: ``"t1"`` (one TCP connection) or ``"u1"`` (one UDP socket).
        local_port: SIP port to bind (default: a free one).
        media_port: SIPp's media port ``-mp`` (default: a free one).
        calls: stop after this many calls (``-m``).
        rate: calls per second (``-r``), None for SIPp's default.
        concurrent: cap on simultaneous calls (``-l``).
        service: the Request-URI user ``[service]`` (``-s``).
        duration_ms: the length of ``<pause/>`` (``-d``).
        keys: ``-key`` values; ``caller`` defaults to ``"sipp"``.
        files: media files the scenario names, linked into ``workdir`` under these names.
        timeout_s: hard bound: SIPp's own ``-timeout`` (a failure), and this function kills
            the process a few seconds after it.
        workdir: where SIPp runs and writes its logs.
        name: the log file prefix (default: the scenario name).
        extra_args: more SIPp options.
        started: set once the process has been spawned (a server test then starts its
            client; SIPp binds its sockets within milliseconds of starting).

    Returns:
        The `SippResult`.

    Raises:
        SippError: SIPp is not installed, or overran its bound and had to be killed.
    """
    if not sipp_available():
        raise SippError("sipp is not installed (Debian package sip-tester)")
    scenario_path, builtin, label = _prepare(scenario, workdir, name, files or {})
    command = sipp_command(
        target,
        scenario=scenario_path,
        builtin=builtin,
        transport=transport,
        local_port=local_port if local_port is not None else free_port(_kind(transport)),
        media_port=media_port if media_port is not None else free_port(socket.SOCK_DGRAM),
        calls=calls,
        rate=rate,
        concurrent=concurrent,
        service=service,
        duration_ms=duration_ms,
        keys=keys,
        timeout_s=timeout_s,
        workdir=workdir,
        name=label,
        extra_args=extra_args,
    )
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # so a kill reaches SIPp's RTP threads' process group
    )
    if started is not None:
        started.set()
    try:
        assert process.stdout is not None
        output = await asyncio.wait_for(_read_bounded(process.stdout), timeout_s + 5.0)
        returncode = await asyncio.wait_for(process.wait(), 5.0)
    except TimeoutError as exc:
        raise SippError(f"sipp overran {timeout_s + 5.0:.0f} s: {' '.join(command)}") from exc
    finally:
        await _kill(process)
    return _result(workdir, label, returncode, output)


def run_sipp_sync(*args: object, **kwargs: object) -> SippResult:
    """`run_sipp` from synchronous code (a fresh event loop; not from inside one)."""
    return asyncio.run(run_sipp(*args, **kwargs))  # type: ignore[arg-type]


def _kind(transport: str) -> int:
    return socket.SOCK_DGRAM if transport.startswith("u") else socket.SOCK_STREAM


async def _read_bounded(stream: asyncio.StreamReader) -> str:
    # SIPp redraws its screen; keep the tail only, so a chatty run cannot grow memory.
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > _STDOUT_LIMIT:
            del kept[: len(kept) - _STDOUT_LIMIT]
    return kept.decode(errors="replace")


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError, ProcessLookupError):
        await asyncio.wait_for(process.wait(), 5.0)
