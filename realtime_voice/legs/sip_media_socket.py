"""The UDP side of `RtpStream` (`legs.sip_media`): binding the call's socket, its protocol.

The socket is bound before the SDP is written (its port goes in our SDP) and serves
both directions (symmetric RTP). Binding it ourselves, rather than letting asyncio do
it, is what lets a port range be honoured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["Address", "RtpSocketProtocol", "bind_udp", "is_ip"]

Address = tuple[str, int]
"""An (IP literal, port) pair."""


class RtpSocketProtocol(asyncio.DatagramProtocol):
    """Hands each datagram, and each send error the OS reports, to the stream.

    The callbacks are set once the stream exists (it needs the transport first);
    anything that arrives before is dropped.
    """

    def __init__(self) -> None:
        self.on_datagram: Callable[[bytes, Address], None] | None = None
        self.on_error: Callable[[Exception], None] | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Pass one datagram on, with its source as (host, port)."""
        if self.on_datagram is not None:
            self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable and the like, for something we sent: the peer may not
        listen yet (or any more); the stream counts it and carries on."""
        if self.on_error is not None:
            self.on_error(exc)


def bind_udp(host: str, port_range: tuple[int, int] | None, family: int) -> socket.socket:
    """A non-blocking UDP socket bound on ``host``.

    Args:
        host: the local address.
        port_range: ports to choose from (inclusive; even ones first, the RTP
            convention of RFC 3550 §11, from a random start so that calls set up
            together do not race for one port), else one the OS picks.
        family: the address family of ``host``.

    Returns:
        The bound socket.

    Raises:
        OSError: no port in the range is free.
        ValueError: the range makes no sense.
    """
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if port_range is None:
            sock.bind((host, 0))
            return sock
        low, high = port_range
        if not 0 < low <= high <= 65535:
            raise ValueError(f"port range {port_range} is not 1 <= low <= high <= 65535")
        ports = list(range(low, high + 1))
        start = random.randrange(len(ports))
        ordered = sorted(ports[start:] + ports[:start], key=lambda p: p % 2)
        for port in ordered:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock
        raise OSError(f"no free UDP port on {host} in {low}-{high}")
    except BaseException:
        sock.close()
        raise


def is_ip(address: str) -> bool:
    """Whether ``address`` is an IP literal (a host name would need resolving)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
