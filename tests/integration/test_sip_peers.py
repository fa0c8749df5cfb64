"""The real SIP peers of the SIP tests, proved peer against peer.

baresip calls baresip over TLS with SDES-SRTP (Opus and PCMU), each hears the other's
tone, and DTMF arrives; SIPp runs every shipped scenario against a counterpart (the
built-in ``uas`` or the matching ``uas_*.xml``), and ``uac_pcmu.xml`` streams its tone
and digit into a baresip that records them. Everything is on 127.0.0.1 with ports the
OS picks; every process is stopped by a fixture even when a test fails. CI installs
both tools (.ci/run), so the skips below only fire on a developer machine without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from realtime_voice.testing.baresip import (
    Baresip,
    BaresipAccount,
    BaresipError,
    baresip_available,
)
from realtime_voice.testing.sipp import (
    SCENARIO_DIR,
    SHIPPED_MEDIA_DIR,
    SippResult,
    free_port,
    run_sipp,
    sipp_available,
    write_ulaw_wav,
)
from realtime_voice.testing.tls_certs import LoopbackCertificates

needs_baresip = pytest.mark.skipif(
    not baresip_available(), reason="baresip not installed (apt-get install baresip-core)"
)
needs_sipp = pytest.mark.skipif(
    not sipp_available(), reason="sipp not installed (apt-get install sip-tester)"
)

StartPhone = Callable[..., Awaitable[Baresip]]
"""The ``phones`` fixture: ``await phones(name, account, **Baresip kwargs)``."""

OPUS = ("opus/48000/2",)
PCMU = ("PCMU/8000",)


def tone(freq_hz: float, seconds: float, rate: int) -> np.ndarray:
    """A sine at about -12 dBFS."""
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def write_tone_wav(path: Path, freq_hz: float, seconds: float = 6.0, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(tone(freq_hz, seconds, rate).tobytes())
    return path


def peak_hz(path: Path) -> tuple[float, float]:
    """(frequency of the FFT peak, RMS) of a recording's first channel."""
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    samples = data.reshape(-1, channels)[:, 0].astype(np.float64)
    if samples.size < rate // 10:
        return 0.0, 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    spectrum[0] = 0.0
    freqs = np.fft.rfftfreq(samples.size, 1.0 / rate)
    return float(freqs[int(np.argmax(spectrum))]), float(np.sqrt(np.mean(samples**2)))


@pytest.fixture
def certificates() -> LoopbackCertificates:
    return LoopbackCertificates()


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[StartPhone]:
    """Start baresip processes; all are stopped (killed if need be) at teardown."""
    started: list[Baresip] = []

    async def start(name: str, account: BaresipAccount, **kwargs: object) -> Baresip:
        phone = Baresip(tmp_path / name, account, **kwargs)  # type: ignore[arg-type]
        started.append(phone)
        await phone.start()
        return phone

    yield start
    for phone in started:
        await phone.stop()


def _details(*phones: Baresip) -> str:
    return "\n".join(f"--- {p.account.user} log ---\n{p.log_text()[-4000:]}" for p in phones)


async def _tls_call(
    phones: StartPhone,
    tmp_path: Path,
    certificates: LoopbackCertificates,
    codecs: tuple[str, ...],
    *,
    answermode: Literal["auto", "manual"] = "auto",
) -> tuple[Baresip, Baresip]:
    ca = certificates.write_ca(tmp_path / "ca.pem")
    server_pem = certificates.write_server_pem(tmp_path / "server.pem")
    rate = 48000 if codecs == OPUS else 8000
    a_account = BaresipAccount(user="alice", audio_codecs=codecs, answermode=answermode)
    b_account = BaresipAccount(user="bob", audio_codecs=codecs)
    a: Baresip = await phones(
        "a",
        a_account,
        ca_file=ca,
        cert_file=server_pem,
        play_wav=write_tone_wav(tmp_path / "a.wav", 440, rate=rate),
    )
    b: Baresip = await phones(
        "b", b_account, ca_file=ca, play_wav=write_tone_wav(tmp_path / "b.wav", 1000, rate=rate)
    )
    await b.dial(a.uri("tls"))
    if answermode == "manual":
        incoming = await a.wait_event("CALL_INCOMING", timeout_s=10)
        assert "bob" in str(incoming.get("peeruri")), incoming
        await a.answer()
    await b.wait_event("CALL_ESTABLISHED", timeout_s=10)
    await a.wait_event("CALL_ESTABLISHED", timeout_s=10)
    return a, b


async def _hang_up(a: Baresip, b: Baresip) -> None:
    # Still up: the call must end by this BYE, not by a microphone file running out.
    assert not a.events("CALL_CLOSED") and not b.events("CALL_CLOSED"), _details(a, b)
    await b.hangup()
    await b.wait_event("CALL_CLOSED", timeout_s=10)
    await a.wait_event("CALL_CLOSED", timeout_s=10)


def _recorded_seconds(path: Path) -> float:
    """Seconds of audio in a recording still being written.

    libsndfile fills in the header's sizes only when the file is closed (the `wave`
    module refuses it until then), so read the format fields of the canonical 44-byte
    header and go by the file size.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(44)
        size = path.stat().st_size
    except OSError:
        return 0.0
    if len(header) < 44 or header[:4] != b"RIFF" or header[12:16] != b"fmt ":
        return 0.0
    channels, rate = struct.unpack_from("<HI", header, 22)
    bits = struct.unpack_from("<H", header, 34)[0]
    bytes_per_second = rate * channels * bits // 8
    return max(0, size - 44) / bytes_per_second if bytes_per_second else 0.0


async def _talk(phone: Baresip, seconds: float, timeout_s: float = 15.0) -> None:
    """Until ``phone`` has recorded ``seconds`` of received audio (polled: the growing file
    is the only progress signal baresip gives; bounded by ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        rx = phone.rx_recordings()
        if rx and _recorded_seconds(rx[-1]) >= seconds:
            return
        if loop.time() > deadline:
            raise AssertionError(f"call audio did not reach {seconds} s\n{_details(phone)}")
        await asyncio.sleep(0.05)


@needs_baresip
@pytest.mark.parametrize("codecs", [OPUS, PCMU], ids=["opus", "pcmu"])
async def test_baresip_tls_srtp_call_carries_both_tones(
    phones: StartPhone,
    tmp_path: Path,
    certificates: LoopbackCertificates,
    codecs: tuple[str, ...],
) -> None:
    a, b = await _tls_call(phones, tmp_path, certificates, codecs)
    menc = a.events("CALL_MENC")
    assert menc and "AES_CM_128_HMAC_SHA1_80" in str(menc[0].get("param")), _details(a, b)
    await _talk(b, 2.0)
    await _talk(a, 2.0)
    await _hang_up(a, b)

    assert a.rx_recordings() and b.rx_recordings(), _details(a, b)
    a_heard, a_rms = peak_hz(a.rx_recordings()[-1])
    b_heard, b_rms = peak_hz(b.rx_recordings()[-1])
    assert abs(a_heard - 1000) < 15 and a_rms > 1000, (a_heard, a_rms, _details(a, b))
    assert abs(b_heard - 440) < 15 and b_rms > 1000, (b_heard, b_rms, _details(a, b))


@needs_baresip
async def test_baresip_manual_answer_and_dtmf_reaches_the_other_phone(
    phones: StartPhone, tmp_path: Path, certificates: LoopbackCertificates
) -> None:
    a, b = await _tls_call(phones, tmp_path, certificates, PCMU, answermode="manual")
    await b.send_dtmf("42#")
    for _ in "42#":
        await a.wait_event("CALL_DTMF_END", timeout_s=10)
    assert a.received_digits() == "42#", _details(a, b)
    await _hang_up(a, b)


@needs_baresip
async def test_baresip_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))  # baresip's SIP UDP port, already in use
        port = int(taken.getsockname()[1])
        phone = Baresip(tmp_path / "x", BaresipAccount(user="x"), sip_port=port)
        with pytest.raises(BaresipError) as caught:
            await phone.start()
    assert "baresip v" in str(caught.value)  # the log's banner line is in the message
    assert phone.returncode is not None


# --- SIPp -------------------------------------------------------------------------------


async def _sipp_pair(
    uac: str,
    uas: str,
    workdir: Path,
    *,
    duration_ms: int | None = None,
    files: dict[str, Path] | None = None,
) -> tuple[SippResult, SippResult]:
    """Run scenario ``uac`` against SIPp server ``uas`` (built-in name or XML), over TCP."""
    port = free_port()
    spawned = asyncio.Event()
    server_scenario: Path | str = SCENARIO_DIR / uas if uas.endswith(".xml") else uas
    server = asyncio.create_task(
        run_sipp(
            server_scenario,
            None,
            local_port=port,
            service="alice",
            timeout_s=20,
            workdir=workdir,
            name="uas",
            started=spawned,
        )
    )
    try:
        await asyncio.wait_for(spawned.wait(), 10)
        await _wait_listening(port)
        client = await run_sipp(
            SCENARIO_DIR / uac,
            f"127.0.0.1:{port}",
            service="alice",
            duration_ms=duration_ms,
            files=files,
            timeout_s=15,
            workdir=workdir,
            name="uac",
        )
        return client, await asyncio.wait_for(server, 25)
    finally:
        server.cancel()  # run_sipp kills its process when cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    """Until something accepts TCP on ``port`` (SIPp binds within milliseconds)."""

    async def probe() -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return

    await asyncio.wait_for(probe(), timeout_s)


PAIRS = [
    # SIPp's built-in uas lingers 4 s after the BYE and counts the caller closing the TCP
    # connection in that time as a failure: only the caller's verdict counts there.
    ("uac_bye_race.xml", "uas", False),
    ("uac_cancel.xml", "uas_cancel.xml", True),
    ("uac_hold.xml", "uas_hold.xml", True),
    ("uac_invite_retransmit.xml", "uas_invite_retransmit.xml", True),
]


@needs_sipp
@pytest.mark.parametrize(("uac", "uas", "server_verdict"), PAIRS)
async def test_sipp_scenario_against_its_counterpart(
    tmp_path: Path, uac: str, uas: str, server_verdict: bool
) -> None:
    client, server = await _sipp_pair(uac, uas, tmp_path, duration_ms=100)
    assert client.ok, client.describe()
    if server_verdict:
        assert server.ok, server.describe()


def test_every_shipped_scenario_is_exercised() -> None:
    """A scenario added to the directory without a run here would never be parsed."""
    exercised = {name for pair in PAIRS for name in pair[:2]} | {"uac_pcmu.xml"}
    shipped = {path.name for path in SCENARIO_DIR.glob("*.xml")}
    assert shipped <= exercised | {"uas"}, shipped - exercised


@needs_sipp
async def test_sipp_failure_is_reported(tmp_path: Path) -> None:
    """The built-in uas does not expect a re-INVITE: the hold call must count as failed."""
    client, _ = await _sipp_pair("uac_hold.xml", "uas", tmp_path, duration_ms=50)
    assert client.returncode != 0 and client.failed == 1 and not client.ok, client.describe()


@needs_sipp
async def test_sipp_runs_several_calls_with_rate_and_limit(tmp_path: Path) -> None:
    port = free_port()
    spawned = asyncio.Event()
    server = asyncio.create_task(
        run_sipp(
            "uas",
            None,
            local_port=port,
            calls=20,
            timeout_s=20,
            workdir=tmp_path,
            name="uas",
            started=spawned,
        )
    )
    try:
        await asyncio.wait_for(spawned.wait(), 10)
        await _wait_listening(port)
        client = await run_sipp(
            SCENARIO_DIR / "uac_bye_race.xml",
            f"127.0.0.1:{port}",
            calls=20,
            rate=100,
            concurrent=10,
            timeout_s=15,
            workdir=tmp_path,
            name="uac",
        )
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    assert client.ok and client.successful == 20, client.describe()


@needs_sipp
async def test_sipp_uac_pcmu_completes_against_builtin_uas(tmp_path: Path) -> None:
    files = {
        "caller.ulaw.wav": write_ulaw_wav(tmp_path / "tone.ulaw.wav", tone(1000, 1.0, 8000)),
        "dtmf.pcap": SHIPPED_MEDIA_DIR / "dtmf_2833_1.pcap",
    }
    client, _ = await _sipp_pair("uac_pcmu.xml", "uas", tmp_path, duration_ms=300, files=files)
    assert client.returncode == 0 and client.ok, client.describe()
    trace = client.messages_log.read_text()
    assert "m=audio" in trace and "RTP/AVP 0 101" in trace


@needs_sipp
@needs_baresip
async def test_sipp_uac_pcmu_streams_tone_and_dtmf_into_baresip(
    phones: StartPhone, tmp_path: Path
) -> None:
    callee: Baresip = await phones(
        "callee",
        BaresipAccount(
            user="alice", transport="tcp", audio_codecs=PCMU, mediaenc=None, answermode="auto"
        ),
    )
    files = {
        "caller.ulaw.wav": write_ulaw_wav(tmp_path / "tone.ulaw.wav", tone(1000, 1.5, 8000)),
        "dtmf.pcap": SHIPPED_MEDIA_DIR / "dtmf_2833_1.pcap",
    }
    result = await run_sipp(
        SCENARIO_DIR / "uac_pcmu.xml",
        f"127.0.0.1:{callee.listen_port('tcp')}",
        service="alice",
        duration_ms=1500,
        files=files,
        timeout_s=15,
        workdir=tmp_path / "sipp",
    )
    assert result.ok, result.describe() + _details(callee)
    await callee.wait_event("CALL_CLOSED", timeout_s=10)
    heard, rms = peak_hz(callee.rx_recordings()[-1])
    assert abs(heard - 1000) < 15 and rms > 1000, (heard, rms, _details(callee))
    assert callee.received_digits() == "1", _details(callee)
