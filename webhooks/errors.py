"""The JSON error responses of the HTTP control plane.

Every refusal a webhook or API route answers has the same shape, ``{"error": ...}`` first
and then whatever names the culprit (``field``, ``parameter``, ``message``), which outside
clients parse (docs/PROTOCOLS.md). Building them in one place keeps the key order and the
encoding identical from route to route.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import JSONEncoder

__all__ = ["json_error"]


def json_error(
    status: int,
    error: str,
    *,
    headers: Mapping[str, str] | None = None,
    dumps: JSONEncoder = json.dumps,
    **fields: str | None,
) -> web.Response:
    """A JSON error response ``{"error": error, **fields}``.

    Args:
        status: the HTTP status.
        error: the ``error`` value: a message, or a code when a ``message`` field follows.
        headers: extra response headers (``Retry-After``).
        dumps: the JSON encoder; a route whose other answers are not ASCII-escaped passes
            its own so its errors are encoded alike.
        **fields: further keys, in order after ``error``; a ``None`` value is left out, so
            an optional ``field`` can be passed through as it is.
    """
    body: dict[str, str] = {"error": error}
    body.update((name, value) for name, value in fields.items() if value is not None)
    return web.json_response(body, status=status, headers=headers, dumps=dumps)
