"""A loopback packet capture of SIP calls' RTP, for `bench_sip_load`: kernel-timestamped
packets from a raw socket (root only), and what they say: send lateness, sequence gaps,
ticks skipped, and how long each caller waited for the bot."""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime_voice.audio.g711 import ulaw_to_pcm16

__all__ = ["CaptureFigures", "LoopbackCapture", "Packet", "analyse_capture", "server_rtp_ports"]

_CAPTURE_LIMIT = 500_000  # packets kept (20 calls, both ways, 20 s: 40,000)
_CAPTURE_BUFFER = 64 * 1024 * 1024
_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35  # Linux; SCM_TIMESTAMPNS has the same value
_SPEECH_RMS = 300.0  # PCM16 units: above line noise, below any spoken word
_END_OF_SPEECH_S = 0.4
_BOT_QUIET_S = 0.3

Packet = tuple[float, int, int, int, int, bytes]
"""(kernel time s, src port, dst port, RTP seq, RTP timestamp, payload)."""


class LoopbackCapture:
    """The RTP datagrams sent on ``lo`` while running, with the kernel's timestamps.

    A thread reads an ``AF_PACKET`` socket bound to ``lo`` and keeps each outgoing UDP
    datagram that looks like RTP (version 2) as a `Packet`. Loopback shows every packet
    twice (sent, then received): only the sent copy is kept, so its time is when the
    sender's ``sendto`` reached the kernel, whoever reads it and however late.
    """

    def __init__(self, limit: int = _CAPTURE_LIMIT) -> None:
        self.packets: list[Packet] = []
        self.error: str | None = None
        self.kernel_drops = 0
        self._limit = limit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> bool:
        """Open the socket and start reading; False (and `error` set) if not permitted."""
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            sock.bind(("lo", 0))
            try:  # root may exceed net.core.rmem_max: a starved reader must not drop
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _CAPTURE_BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _CAPTURE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.settimeout(0.2)
        except (OSError, AttributeError) as exc:
            self.error = f"no loopback capture ({exc})"
            return False
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="lo-capture", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop reading, read the kernel's drop count and close the socket (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                stats = self._sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
                self.kernel_drops = struct.unpack("II", stats)[1]
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        assert self._sock is not None
        space = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, address = self._sock.recvmsg(2048, space)
            except TimeoutError:
                continue
            except OSError as exc:
                self.error = f"capture stopped: {exc}"
                return
            if address[2] != _PACKET_OUTGOING or len(self.packets) >= self._limit:
                continue
            parsed = _rtp_header(data)
            if parsed is None:
                continue
            stamp = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanos = struct.unpack("qq", value[:16])
                    stamp = seconds + nanos / 1e9
            self.packets.append((stamp, *parsed))


def _rtp_header(frame: bytes) -> tuple[int, int, int, int, bytes] | None:
    """(src port, dst port, seq, timestamp, payload) of Ethernet/IPv4/UDP/RTP, else None."""
    if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 17:  # not UDP
        return None
    udp = 14 + ihl
    rtp = udp + 8
    if len(frame) < rtp + 12 or frame[rtp] >> 6 != 2:
        return None
    src, dst = struct.unpack_from("!HH", frame, udp)
    seq, stamp = struct.unpack_from("!HI", frame, rtp + 2)
    header = 12 + 4 * (frame[rtp] & 0x0F)  # CSRCs; no extension is expected here
    return src, dst, seq, stamp, frame[rtp + header :]


@dataclass
class CaptureFigures:
    """What the loopback capture of one SIP window shows.

    Attributes:
        lateness_ms: each bot packet's lateness against its stream's timestamp grid.
        caller_waits_s: end of the caller's speech → first loud bot packet after it.
        bot_streams: bot RTP streams seen.
        bot_packets: bot packets seen.
        bot_seq_gaps: bot packets missing from the capture (loopback loses nothing:
            these are capture drops).
        skipped_ticks: frames the server's clock skipped (timestamp steps of more than
            one frame without a sequence gap).
        caller_seq_gaps: SIPp packets missing from the capture.
    """

    lateness_ms: list[float]
    caller_waits_s: list[float]
    bot_streams: int
    bot_packets: int
    bot_seq_gaps: int
    skipped_ticks: int
    caller_seq_gaps: int


def analyse_capture(
    packets: Sequence[Packet], server_ports: set[int], samples_per_frame: int = 160
) -> CaptureFigures:
    """Per-stream lateness, gaps and caller waits (see `CaptureFigures`).

    A bot stream is a source port in ``server_ports``; the caller's stream of the same
    call is the one going the other way between the same two ports. A stream's grid is
    its RTP timestamp (8 kHz), anchored so that its earliest packet (the smallest send
    time minus timestamp) is on time; a timestamp jump of over a second re-anchors.
    """
    streams: dict[tuple[int, int], list[Packet]] = {}
    for packet in packets:
        streams.setdefault((packet[1], packet[2]), []).append(packet)
    lateness: list[float] = []
    waits: list[float] = []
    seq_gaps = skipped = caller_gaps = bot_packets = bot_streams = 0
    for (src, dst), rows in streams.items():
        if src not in server_ports:
            if dst in server_ports:
                caller_gaps += _seq_gaps(rows)
            continue
        bot_streams += 1
        bot_packets += len(rows)
        seq_gaps += _seq_gaps(rows)
        lateness += _lateness_ms(rows)
        for previous, packet in itertools.pairwise(rows):
            seq_step = (packet[3] - previous[3]) % 2**16
            ts_step = (packet[4] - previous[4]) % 2**32
            if seq_step == 1 and ts_step < 2**31 and ts_step > samples_per_frame:
                skipped += ts_step // samples_per_frame - 1
        waits += _caller_waits(streams.get((dst, src), []), rows)
    return CaptureFigures(lateness, waits, bot_streams, bot_packets, seq_gaps, skipped,
                          caller_gaps)  # fmt: skip


def _seq_gaps(rows: Sequence[Packet]) -> int:
    missing = 0
    for previous, packet in itertools.pairwise(rows):
        step = (packet[3] - previous[3]) % 2**16
        if 1 < step < 2**15:
            missing += step - 1
    return missing


def _lateness_ms(rows: Sequence[Packet], clock_rate: int = 8000) -> list[float]:
    out: list[float] = []
    segment: list[float] = []
    unwrapped = 0
    for index, (when, _src, _dst, _seq, stamp, _payload) in enumerate(rows):
        if index:
            step = (stamp - rows[index - 1][4]) % 2**32
            unwrapped += step if step < 2**31 else step - 2**32
        offset = when - unwrapped / clock_rate
        if segment and abs(offset - segment[-1]) > 1.0:  # not the same timeline
            out += _from_anchor(segment)
            segment = []
        segment.append(offset)
    return out + _from_anchor(segment)


def _from_anchor(offsets: list[float]) -> list[float]:
    if not offsets:
        return []
    anchor = min(offsets)
    return [1000 * (o - anchor) for o in offsets]


def _loud(rows: Sequence[Packet]) -> list[tuple[float, bool]]:
    out = []
    for when, *_ports, payload in rows:
        pcm = ulaw_to_pcm16(payload).astype(np.float64)
        out.append((when, bool(pcm.size) and float(np.sqrt(np.mean(pcm**2))) > _SPEECH_RMS))
    return out


def _caller_waits(caller: Sequence[Packet], bot: Sequence[Packet]) -> list[float]:
    """End of each caller utterance → the onset of the bot's next speech.

    An utterance ends at its last loud packet once ``_END_OF_SPEECH_S`` of quiet follow;
    a bot onset is a loud packet after ``_BOT_QUIET_S`` of quiet. An utterance the bot
    was still talking over at its end, or that got no answer before the caller spoke
    again (or the capture ended), is left out.
    """
    if not caller or not bot:
        return []
    heard = _loud(caller)
    said = _loud(bot)
    ends: list[float] = []
    starts: list[float] = []
    last_loud: float | None = None
    in_speech = False
    for when, loud in heard:
        if loud:
            if not in_speech:
                starts.append(when)
            in_speech, last_loud = True, when
        elif in_speech and last_loud is not None and when - last_loud >= _END_OF_SPEECH_S:
            ends.append(last_loud)
            in_speech = False
    onsets: list[float] = []
    previous_loud = said[0][0] - _BOT_QUIET_S  # quiet before the capture is unknown
    bot_loud_at: list[float] = []
    for when, loud in said:
        if loud:
            if when - previous_loud >= _BOT_QUIET_S and when - said[0][0] >= _BOT_QUIET_S:
                onsets.append(when)
            previous_loud = when
            bot_loud_at.append(when)
    waits = []
    for end in ends:
        if any(end - 0.1 <= t <= end + 0.02 for t in bot_loud_at):
            continue  # the bot was talking as the caller stopped: no clean turn
        limit = min((s for s in starts if s > end), default=said[-1][0])
        answer = next((o for o in onsets if end < o <= limit), None)
        if answer is not None:
            waits.append(answer - end)
    return waits


def server_rtp_ports(messages_log: Path) -> set[int]:
    """The RTP ports the server put in its SDP answers (the 200s SIPp received)."""
    try:
        text = messages_log.read_text(errors="replace")
    except OSError:
        return set()
    ports: set[int] = set()
    # SIPp separates messages with a dashed header line; a received 200 holds our answer.
    for block in re.split(r"\n-{10,}[^\n]*\n", text):
        if re.search(r"^\s*SIP/2\.0 200", block, re.MULTILINE) and "INVITE" in block:
            ports.update(int(p) for p in re.findall(r"^\s*m=audio (\d+)", block, re.MULTILINE))
    return ports
