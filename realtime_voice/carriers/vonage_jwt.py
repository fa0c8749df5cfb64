"""The RS256 application JWT that authenticates Vonage Voice REST API requests.

Vonage's Voice API takes ``Authorization: Bearer <JWT>`` signed with the Vonage
application's private key (developer.vonage.com/en/getting-started/concepts/authentication
#json-web-tokens). The official Python SDK (``vonage_jwt.JwtClient``) mints it with
PyJWT: header ``{"alg": "RS256", "typ": "JWT"}``, claims ``application_id``, ``iat``,
``jti`` (a fresh UUID) and ``exp`` (``iat`` + 15 minutes by default). This module does
the same, so a token is never reused across requests (each has its own ``jti``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Final

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["DEFAULT_TTL_S", "VonageJwtMinter"]

DEFAULT_TTL_S: Final = 15 * 60
"""The official SDK's default lifetime."""


class VonageJwtMinter:
    """Mints application JWTs for one Vonage application.

    Args:
        application_id: the Vonage application's id.
        private_key_pem: its RSA private key, PEM (PKCS#8 ``BEGIN PRIVATE KEY`` as the
            dashboard hands it out, or PKCS#1).
        ttl_s: each token's lifetime (``exp`` - ``iat``).
        clock: epoch seconds (tests inject one).

    Raises:
        ValueError: an empty application id, or a key that is not an RSA private key.
    """

    def __init__(
        self,
        application_id: str,
        private_key_pem: str | bytes,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not application_id:
            raise ValueError("the Vonage application id must not be empty")
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            # The message never echoes the key.
            raise ValueError(f"Vonage private key is not a PEM private key ({exc})") from None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("Vonage application JWTs need an RSA private key (RS256)")
        self.application_id = application_id
        self._key = key
        self._ttl_s = ttl_s
        self._clock = clock

    def mint(self) -> str:
        """A fresh RS256 token: ``application_id``, ``iat``, ``exp``, ``jti``."""
        iat = int(self._clock())
        claims = {
            "application_id": self.application_id,
            "iat": iat,
            "exp": iat + self._ttl_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"typ": "JWT"})
