"""Reading a webhook's request body whole, with a size limit."""

from __future__ import annotations

from aiohttp import web

__all__ = ["read_body"]


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is over ``limit`` bytes.

    ``StreamReader.read(n)`` returns what has arrived so far, which over a real network
    can be part of the body: read until the end.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
