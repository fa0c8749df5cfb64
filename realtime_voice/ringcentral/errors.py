"""The exceptions of the RingCentral REST client, as one tree.

::

    RingCentralError
    ├── RingCentralConfigError      credentials missing from the settings
    ├── RingCentralAuthError        the token endpoint refused our credentials
    ├── RingCentralApiError         the API answered with an error status
    └── RingCentralConnectionError  no answer at all (refused, reset, timed out)

``retryable`` says whether trying the same request again may succeed: true for 429, 5xx
and connection failures, false for everything a retry cannot fix.
"""

from __future__ import annotations

__all__ = [
    "RingCentralApiError",
    "RingCentralAuthError",
    "RingCentralConfigError",
    "RingCentralConnectionError",
    "RingCentralError",
]


class RingCentralError(Exception):
    """Base of every RingCentral client error.

    Attributes:
        retryable: the same request may succeed if tried again.
    """

    retryable: bool = False


class RingCentralConfigError(RingCentralError):
    """A setting the client needs is missing (the message names the variable)."""


class RingCentralAuthError(RingCentralError):
    """The OAuth token endpoint refused the client credentials or the JWT.

    Attributes:
        status: HTTP status of the token endpoint.
        error: the OAuth ``error`` code (``invalid_client``, ``invalid_grant``, ...).
        description: the OAuth ``error_description``.
    """

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"RingCentral token request refused ({status} {error}): {description}")
        self.status = status
        self.error = error
        self.description = description


class RingCentralApiError(RingCentralError):
    """The API answered with an error status.

    Attributes:
        status: the HTTP status.
        error_code: RingCentral's ``errorCode`` (``CMN-102``, ...) or OAuth ``error``.
        message: RingCentral's ``message``, or the reason phrase.
        method: the request method.
        path: the request path.
        retry_after: seconds from a ``Retry-After`` header (429/503), if given.
    """

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        method: str,
        path: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{method} {path} → {status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.retryable = status == 429 or status >= 500


class RingCentralConnectionError(RingCentralError):
    """No HTTP answer: connection refused or reset, DNS failure, or a timeout."""

    retryable = True
