"""SRTP for one call: SDES ``AES_CM_128_HMAC_SHA1_80`` (RFC 3711, RFC 4568) via pylibsrtp.

pylibsrtp (BSD-3) wraps libsrtp 2, bundled and statically linked in its wheel, so there
is no OpenSSL or system library to match. Each call gets one `SrtpContext` holding two
libsrtp sessions:

- outbound, keyed with *our* 30-byte master key+salt (the one in our ``a=crypto``), for
  every SSRC we send (``SSRC_ANY_OUTBOUND``);
- inbound, keyed with the *remote's* key, for any SSRC the peer sends
  (``SSRC_ANY_INBOUND``: a transfer or a hold can change the peer's SSRC mid-call, and
  libsrtp then derives a stream for the new one from the same key).

The two are separate so that a re-INVITE carrying a new ``a=crypto`` rebuilds only the
direction whose key changed (`SrtpContext.rekey_inbound`, `SrtpContext.rekey_outbound`).

`SrtpContext.unprotect` never raises for what the network sends: a packet that fails is
dropped (None) and counted by cause in `SrtpStats` (pylibsrtp raises ``pylibsrtp.Error``
whose message is libsrtp's status text: "authentication failure", "replay check failed
(bad index)" / "(index too old)", "error parsing data", ...), so metrics can tell an
attack or a key mismatch (auth failures) from network duplication (replays).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pylibsrtp

__all__ = [
    "SRTP_AUTH_TAG_SIZE",
    "SRTP_KEY_SIZE",
    "SrtpContext",
    "SrtpStats",
    "generate_key",
]

SRTP_KEY_SIZE = 30
"""Master key (16 bytes) plus master salt (14 bytes) of AES_CM_128_HMAC_SHA1_80."""

SRTP_AUTH_TAG_SIZE = 10
"""Bytes SRTP adds to each RTP packet (the 80-bit HMAC-SHA1 tag; no MKI)."""

_MIN_SRTP = 12 + SRTP_AUTH_TAG_SIZE
# libsrtp's status texts for the two causes we count apart (pylibsrtp.ERRORS).
_AUTH_FAILURE = "authentication failure"
_REPLAY_PREFIXES = ("replay check failed", "packet index is too old")


@dataclass(slots=True)
class SrtpStats:
    """Counters of one `SrtpContext`, for metrics (they only grow).

    Attributes:
        protected: packets protected.
        unprotected: packets that passed authentication and the replay check.
        auth_failures: packets dropped because their tag did not verify (tampering,
            corruption or a key mismatch).
        replays: packets dropped as replays (an index already seen, or too old for the
            replay window).
        malformed: packets dropped before authentication (too short, not RTP, too long).
    """

    protected: int = 0
    unprotected: int = 0
    auth_failures: int = 0
    replays: int = 0
    malformed: int = 0

    @property
    def dropped(self) -> int:
        """All inbound packets dropped, whatever the cause."""
        return self.auth_failures + self.replays + self.malformed


def generate_key() -> bytes:
    """A fresh master key+salt for our side of one call (never reuse one across calls).

    Returns:
        30 bytes from the OS's CSPRNG; base64 of them is the SDES ``inline:`` value.
    """
    return secrets.token_bytes(SRTP_KEY_SIZE)


def _check_key(name: str, key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != SRTP_KEY_SIZE:
        size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
        raise ValueError(f"{name} must be {SRTP_KEY_SIZE} bytes (key + salt), got {size}")
    return bytes(key)


def _session(key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=ssrc_type,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    return pylibsrtp.Session(policy)


class SrtpContext:
    """The SRTP state of one call: protect what we send, unprotect what we receive.

    Args:
        local_key: our 30-byte master key+salt (sent in our ``a=crypto``).
        remote_key: the peer's 30-byte master key+salt (from its ``a=crypto``).

    Raises:
        ValueError: a key is not 30 bytes.
    """

    __slots__ = ("_inbound", "_outbound", "stats")

    def __init__(self, local_key: bytes, remote_key: bytes) -> None:
        self._outbound = _session(
            _check_key("local_key", local_key), pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        )
        self._inbound = _session(
            _check_key("remote_key", remote_key), pylibsrtp.Policy.SSRC_ANY_INBOUND
        )
        self.stats = SrtpStats()

    def protect(self, rtp: bytes) -> bytes:
        """Encrypt and authenticate one RTP packet we built.

        Args:
            rtp: a serialised RTP packet (`RtpPacket.to_bytes`).

        Returns:
            The SRTP packet (10 bytes longer).

        Raises:
            ValueError: ``rtp`` is not an RTP packet libsrtp accepts, or its sequence
                number was protected before (libsrtp never sends one index twice: a
                retransmission needs a new sequence number). Our own bug, not the
                network's, so it is raised rather than counted.
        """
        try:
            out = self._outbound.protect(bytes(rtp))
        except pylibsrtp.Error as exc:
            raise ValueError(f"SRTP protect failed: {exc}") from exc
        self.stats.protected += 1
        return out

    def unprotect(self, srtp: bytes | bytearray | memoryview) -> bytes | None:
        """Authenticate and decrypt one received SRTP packet.

        Args:
            srtp: the datagram as received.

        Returns:
            The plain RTP packet, or None when it was dropped (the cause is counted in
            `stats`). Nothing is raised for any input.
        """
        data = bytes(srtp)
        if len(data) < _MIN_SRTP or data[0] >> 6 != 2:
            # Cheaper than a trip through libsrtp, and it names the cause the same way.
            self.stats.malformed += 1
            return None
        try:
            plain = self._inbound.unprotect(data)
        except pylibsrtp.Error as exc:
            message = str(exc)
            if message == _AUTH_FAILURE:
                self.stats.auth_failures += 1
            elif message.startswith(_REPLAY_PREFIXES):
                self.stats.replays += 1
            else:
                self.stats.malformed += 1
            return None
        except ValueError:
            # pylibsrtp's own check: longer than its 1,500-byte buffer.
            self.stats.malformed += 1
            return None
        self.stats.unprotected += 1
        return plain

    def rekey_inbound(self, remote_key: bytes) -> None:
        """Use a new remote key (the peer's re-INVITE or answer changed its ``a=crypto``).

        A new master key is a new cryptographic context (RFC 3711 §3.2): its replay
        window and rollover counter start afresh. The counters in `stats` carry on.

        Args:
            remote_key: the peer's new 30-byte master key+salt.

        Raises:
            ValueError: the key is not 30 bytes.
        """
        self._inbound = _session(
            _check_key("remote_key", remote_key), pylibsrtp.Policy.SSRC_ANY_INBOUND
        )

    def rekey_outbound(self, local_key: bytes) -> None:
        """Use a new local key (we offered a new ``a=crypto``).

        Args:
            local_key: our new 30-byte master key+salt.

        Raises:
            ValueError: the key is not 30 bytes.
        """
        self._outbound = _session(
            _check_key("local_key", local_key), pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        )
