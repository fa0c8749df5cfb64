"""The console's login: ``/login`` (page, form, one-click link), ``/logout``, the session API.

- ``GET /login``: a small HTML form (token, submit). With ``?token=<operator token>``
  (the link the server prints at first start) it logs the browser in and 303s to the
  console, so the token leaves the address bar at once.
- ``POST /login`` (form ``token``, ``next``): 303 to ``next`` with the session cookie, or
  the page again with 401 and a message. Attempts are rate-limited per client address.
- ``POST /logout``: a write (cross-site checked): clears and revokes the session, 204.
- ``GET /api/console/session``: ``{"authenticated": true, "csrf_token", "expires_at"}``
  for a cookie session (401 otherwise): where the console's scripts read the CSRF token.

``next`` is only ever a path on this server (``/live``, ``/calls/abc?x=1``): anything else
(``//evil.example``, ``https://...``, ``/\\evil``) becomes ``/``, so the login can never be
turned into an open redirect. Every HTML page the control plane serves gets the console's
security headers (CSP, no framing, no referrer off-site) unless its handler set its own.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web

from realtime_voice.security.rate_limit import AddressRateLimiter, client_address
from webhooks.authorize import refusal
from webhooks.console_auth import ConsoleAuth

__all__ = [
    "CONSOLE_CSP",
    "LOGIN_ATTEMPTS_PER_MINUTE",
    "LOGIN_CSP",
    "add_login_routes",
    "safe_next",
]

log = logging.getLogger(__name__)

LOGIN_ATTEMPTS_PER_MINUTE = 10
"""Login attempts one address may make a minute (and at once): a guesser gets nowhere
against a 256-bit token, and an operator mistyping never reaches it."""

LOGIN_CSP = "default-src 'self'"
CONSOLE_CSP = "default-src 'self'; media-src 'self' blob:; connect-src 'self' ws: wss:"
"""The console pages': the bot's audio plays from blobs, the browser leg's socket is on
the media port (another origin), which ``'self'`` alone would not allow."""

_MAX_NEXT = 2048
_NO_STORE = {"Cache-Control": "no-store"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in - realtime-voice console</title>
<link rel="stylesheet" href="/static/css/console.css">
</head>
<body class="login-page">
<main class="login">
<h1>realtime-voice console</h1>
{message}<form method="post" action="/login">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required
 autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form>
<p class="hint">The token is <code>VOICE_API_TOKEN</code>, or the one the server generated
at its first start: printed then, and kept in <code>&lt;VOICE_DATA_DIR&gt;/api-token</code>.</p>
</main>
</body>
</html>
"""


def safe_next(raw: str | None) -> str:
    """Where to go after logging in: ``raw`` if it is a path on this server, else ``/``."""
    if not raw or len(raw) > _MAX_NEXT or not raw.isprintable():
        return "/"
    if not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    try:
        parts = urlsplit(raw)
    except ValueError:
        return "/"
    if parts.scheme or parts.netloc or parts.path.startswith(("/login", "/logout")):
        return "/"
    return raw


def _see_other(location: str) -> web.Response:
    # A response, not a raised HTTPSeeOther: the login sets its cookie on it.
    return web.Response(status=303, headers={"Location": location, **_NO_STORE})


def _page(next_path: str, *, status: int = 200, message: str | None = None,
          headers: dict[str, str] | None = None) -> web.Response:
    alert = f'<p class="error" role="alert">{html.escape(message)}</p>\n' if message else ""
    body = _PAGE.format(message=alert, next=html.escape(next_path, quote=True))
    response = web.Response(text=body, status=status, content_type="text/html",
                            headers={**_NO_STORE, **(headers or {})})
    response.headers["Content-Security-Policy"] = LOGIN_CSP
    response.headers["X-Frame-Options"] = "DENY"
    # The one-click link carries the token in its URL: never let it leave as a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        # same-origin rather than no-referrer: a write's Referer is the cross-site
        # check's fallback where a browser sends no Origin.
        response.headers.setdefault("Referrer-Policy", "same-origin")


def add_login_routes(
    app: web.Application, auth: ConsoleAuth, *, limiter: AddressRateLimiter | None = None
) -> None:
    """Add ``/login``, ``/logout`` and ``/api/console/session``, and the pages' headers.

    Args:
        app: the HTTP control plane (not yet started).
        auth: the console's authorizer (it signs the cookies).
        limiter: the login attempts' bucket per address (default
            `LOGIN_ATTEMPTS_PER_MINUTE` a minute, as many at once).
    """
    attempts = limiter or AddressRateLimiter(LOGIN_ATTEMPTS_PER_MINUTE, LOGIN_ATTEMPTS_PER_MINUTE)

    def address(request: web.Request) -> str:
        return client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                              trust_proxy=auth.trust_proxy_headers)

    def attempt(request: web.Request, given: str, next_path: str) -> web.Response:
        """Check one presented token: 303 in with a cookie, or the page with the refusal."""
        who = address(request)
        refused = attempts.check(who)
        if refused is not None:
            if refused.first:
                log.warning("login attempts from %s over %d/min: refusing with 429",
                            who, LOGIN_ATTEMPTS_PER_MINUTE)
            wait = refused.retry_after_s
            return _page(next_path, status=429, headers={"Retry-After": str(wait)},
                         message=f"Too many login attempts: try again in {wait} s.")
        if not auth.token_matches(given):
            log.warning("console login from %s refused: wrong token", who)
            return _page(next_path, status=401, message="That is not the operator token.")
        response = _see_other(next_path)
        auth.set_session_cookie(response, request)
        log.info("console login from %s", who)
        return response

    async def login_page(request: web.Request) -> web.StreamResponse:
        next_path = safe_next(request.query.get("next"))
        if "token" in request.query:
            return attempt(request, request.query["token"], next_path)
        if auth.page_session(request):
            return _see_other(next_path)
        return _page(next_path)

    async def login(request: web.Request) -> web.StreamResponse:
        # Login CSRF (another site logging the operator into a session of its choosing)
        # is refused like any cross-site write, when the browser says where it came from.
        if "Origin" in request.headers or "Referer" in request.headers:
            auth.check_origin(request)
        try:
            form = await request.post()
        except (ValueError, LookupError):  # a broken form body or an unknown charset
            return _page("/", status=400, message="The login form could not be read.")
        token = form.get("token")
        next_raw = form.get("next")
        next_path = safe_next(next_raw if isinstance(next_raw, str) else None)
        if not isinstance(token, str) or not token:
            return _page(next_path, status=401, message="Enter the operator token.")
        return attempt(request, token, next_path)

    async def logout(request: web.Request) -> web.StreamResponse:
        await auth(request, write=True)
        session = auth.session(request)
        if session is not None:
            auth.revoke(session)
            log.info("console logout from %s", address(request))
        response = web.Response(status=204, headers=_NO_STORE)
        auth.clear_session_cookie(response, request)
        return response

    async def session_info(request: web.Request) -> web.StreamResponse:
        session = auth.session(request)
        if session is None:
            await auth(request)  # the precise 401 (expired, logged out, no cookie)
            raise refusal(401, "unauthorized", "no console session: log in at /login")
        expires = datetime.fromtimestamp(session.expires_at, UTC).isoformat().replace(
            "+00:00", "Z")
        return web.json_response(
            {"authenticated": True, "csrf_token": session.csrf_token, "expires_at": expires},
            headers=_NO_STORE,
        )

    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/console/session", session_info)
