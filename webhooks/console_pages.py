"""The ops console's pages and static files, served by the control plane.

``GET /`` (talk to the bot), ``/live`` (live calls), ``/calls`` (history) and
``/calls/{call_id}`` (one call) answer an HTML page to a logged-in operator and redirect
anyone else to ``/login?next=<the page>``; ``/static/...`` serves the pages' scripts,
styles and the vendored chart library from ``webhooks/static`` (package data, so an
installed wheel serves them with no build step and nothing fetched at run time).

The pages are shells: every figure they show comes from the operator API, which checks
the credentials again on each request. They carry a strict Content-Security-Policy (no
inline script or style, nothing from another origin), which is why the HTML has none.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from aiohttp import web

from webhooks.errors import json_error

__all__ = ["PAGES", "STATIC_DIR", "PageGate", "add_console_pages"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(files("webhooks").joinpath("static")))
"""The console's files (installed as package data beside this module)."""

PAGES = {
    "/": "index.html",
    "/live": "live.html",
    "/calls": "calls.html",
    "/calls/{call_id}": "call.html",
}
"""Each page's path and the file it answers."""

# Media from the page's own origin and blobs (recordings, the softphone's audio); the
# softphone's WebSocket may be on the media plane's port, hence ws:/wss:.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # A page is a shell, but never let a shared cache keep an operator's copy.
    "Cache-Control": "no-store",
}
# No hashed file names (no build step): let browsers keep files but revalidate each time
# (ETag / Last-Modified make that a 304).
_STATIC_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# Named here, not guessed: the system's mime.types differs from machine to machine, and a
# module script is refused unless served as JavaScript.
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".map": "application/json",
}


@runtime_checkable
class PageGate(Protocol):
    """Says whether a page request comes from a logged-in operator (the console's auth)."""

    def page_session(self, request: web.Request) -> bool | Awaitable[bool]:
        """True when ``request`` carries a valid console session."""
        ...


def _login_redirect(request: web.Request) -> web.HTTPFound:
    target = request.path_qs
    return web.HTTPFound(f"/login?next={quote(target, safe='/')}")


def add_console_pages(
    app: web.Application, gate: PageGate | None, *, static_dir: Path = STATIC_DIR
) -> None:
    """Add the console's pages and ``/static/...`` to ``app``.

    Args:
        app: the HTTP control plane's application.
        gate: who may see a page; ``None`` (no login configured) sends every page
            request to ``/login``: the console never opens without a login.
        static_dir: the files to serve.
    """
    root = static_dir.resolve()

    def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            allowed = False
            if gate is not None:
                verdict = gate.page_session(request)
                allowed = bool(await verdict) if inspect.isawaitable(verdict) else bool(verdict)
            if not allowed:
                raise _login_redirect(request)
            return web.FileResponse(
                root / name, headers={**_PAGE_HEADERS, "Content-Type": _TYPES[".html"]}
            )

        return handler

    async def static(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        path = (root / relative).resolve()
        # Refuse anything outside the static tree (``..``, absolute paths, symlinks out).
        if not path.is_relative_to(root) or not path.is_file():
            return json_error(404, "not_found", message=f"no static file {relative!r}")
        headers = dict(_STATIC_HEADERS)
        headers["Content-Type"] = _TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers=headers)

    for route, name in PAGES.items():
        app.router.add_get(route, page(name))
    app.router.add_get("/static/{path:.+}", static)
