"""A throwaway certificate authority for the TLS tests: one CA, server certificates for
127.0.0.1 and localhost, and the files a non-Python peer (baresip) needs.

Built on `trustme`, so no test ever turns certificate verification off: the client side
trusts this CA exactly as production trusts `RC_SIP_CA_FILE` or the system CAs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

__all__ = ["LoopbackCertificates"]


@dataclass
class LoopbackCertificates:
    """One CA and a server certificate valid for ``127.0.0.1`` and ``localhost``.

    Attributes:
        hostnames: the names (and IP addresses) the server certificate covers.
    """

    hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")
    _ca: trustme.CA = field(default_factory=trustme.CA, init=False, repr=False)
    _server: trustme.LeafCert | None = field(default=None, init=False, repr=False)

    @property
    def ca(self) -> trustme.CA:
        """The trustme CA (issues more certificates when a test needs one)."""
        return self._ca

    @property
    def server_cert(self) -> trustme.LeafCert:
        """The server certificate (issued once, on first use)."""
        if self._server is None:
            self._server = self._ca.issue_cert(*self.hostnames)
        return self._server

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the server certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts this CA (hostname checking on)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(context)
        return context

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate (PEM), for a peer's ``cafile`` or ``RC_SIP_CA_FILE``."""
        self._ca.cert_pem.write_to_path(str(path))
        return path

    def write_server_pem(self, path: Path) -> Path:
        """Write the server's private key and certificate chain in one PEM (baresip's form)."""
        cert = self.server_cert
        with path.open("wb") as out:
            out.write(cert.private_key_pem.bytes())
            for blob in cert.cert_chain_pems:
                out.write(blob.bytes())
        return path
