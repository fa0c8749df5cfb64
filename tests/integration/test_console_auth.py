"""The console's login, session cookie and cross-site checks, over a real HTTP server.

The operator routes are the real ones: the calls API (a read, over the real database)
and the outbound-call route (a write; with no SIP device it answers 503 once the caller
is let through, so a 503 means "authorised" and nothing is dialled).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from realtime_voice.storage.database import make_engine
from realtime_voice.storage.migrate import upgrade_database
from realtime_voice.storage.queries import CallStore
from tests.integration import db_fixtures
from webhooks.calls_api import add_calls_routes
from webhooks.console_auth import SESSION_COOKIE, ConsoleAuth
from webhooks.login_page import LOGIN_ATTEMPTS_PER_MINUTE, add_login_routes, safe_next
from webhooks.outbound_api import OUTBOUND_PATH, add_outbound_route

TOKEN = "operator-token-for-the-console-tests-0001"
TTL_S = 3600


class Clock:
    """Unix seconds the test moves on by hand."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Console:
    """One running control plane with the console's auth, and a client without cookies."""

    base: str
    auth: ConsoleAuth
    clock: Clock
    http: aiohttp.ClientSession

    @property
    def origin(self) -> str:
        return self.base.rstrip("/")

    async def login(self, token: str = TOKEN, next_path: str = "/") -> tuple[str, str]:
        """Log in with the form: the cookie value and the session's CSRF token."""
        async with self.http.post(f"{self.origin}/login", data={"token": token, "next": next_path},
                                  allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            cookie = resp.cookies[SESSION_COOKIE].value
        status, info = await self.request("GET", "/api/console/session", cookie=cookie)
        assert status == 200, info
        return cookie, info["csrf_token"]

    async def request(self, method: str, path: str, *, cookie: str | None = None,
                      json: object = None, **headers: str) -> tuple[int, Any]:
        """One request (no redirects followed); the status and JSON body (or text)."""
        if cookie is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        async with self.http.request(method, URL(self.origin + path, encoded=True), json=json,
                                     headers=headers, allow_redirects=False) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


StartConsole = Callable[..., Awaitable[Console]]


@pytest.fixture(scope="module")
def calls_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database for the module (PostgreSQL when TEST_DATABASE_URL is set).

    One, not one per test as the storage tests have: these tests only read it, and find
    it empty, so a fresh database each (half a second to create and migrate) buys nothing.
    """
    base = db_fixtures._test_url()
    if base is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('console-auth') / 'calls.db'}"
        upgrade_database(url)
        yield url
        return
    with db_fixtures._fresh_postgres_database(base) as fresh:
        url = fresh.render_as_string(hide_password=False)
        upgrade_database(url)
        yield url


@pytest.fixture
async def start_console(calls_db: str) -> AsyncIterator[StartConsole]:
    """Starts control planes (``ConsoleAuth`` keyword arguments may be changed)."""
    engine = make_engine(calls_db)
    servers: list[TestServer] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def start(token: str = TOKEN, **options: Any) -> Console:
            clock = Clock()
            auth = ConsoleAuth(token, session_ttl_s=TTL_S, clock=clock, **options)
            app = web.Application()
            add_login_routes(app, auth)
            add_calls_routes(app, CallStore(engine), auth=auth)
            add_outbound_route(app, None, auth=auth)

            async def page(request: web.Request) -> web.Response:
                if not auth.page_session(request):
                    raise auth.login_redirect(request)
                return web.Response(text="<p>live calls</p>", content_type="text/html")

            app.router.add_get("/live", page)
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            servers.append(server)
            return Console(str(server.make_url("/")), auth, clock, http)

        try:
            yield start
        finally:
            for server in servers:
                await server.close()
            engine.dispose()


@pytest.fixture
async def console(start_console: StartConsole) -> Console:
    return await start_console()


def set_cookie_header(headers: Any) -> str:
    (value,) = [v for v in headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE + "=")]
    return str(value)


# ---------------------------------------------------------------------- API clients


async def test_the_calls_api_refuses_without_the_token_and_serves_a_bearer(
    console: Console,
) -> None:
    status, body = await console.request("GET", "/api/calls")
    assert status == 401
    assert body["error"] == "unauthorized" and "/login" in body["message"]
    status, body = await console.request("GET", "/api/calls", Authorization="Bearer wrong")
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = await console.request("GET", "/api/calls", Authorization="Basic " + TOKEN)
    assert status == 401

    status, body = await console.request("GET", "/api/calls", Authorization=f"Bearer {TOKEN}")
    assert status == 200 and body == {"calls": [], "next_cursor": None}
    # A bearer write needs no cross-site checks: no browser adds that header by itself.
    status, body = await console.request("POST", OUTBOUND_PATH, json={"to": "+15551230000"},
                                         Authorization=f"Bearer {TOKEN}")
    assert status == 503, body
    # The session endpoint is for cookie sessions only.
    status, body = await console.request("GET", "/api/console/session",
                                         Authorization=f"Bearer {TOKEN}")
    assert (status, body["error"]) == (401, "unauthorized")


# ---------------------------------------------------------------------- logging in


async def test_login_sets_a_strict_http_only_session_cookie(console: Console) -> None:
    page = await console.http.get(f"{console.origin}/login?next=/live")
    text = await page.text()
    assert page.status == 200 and 'name="token"' in text and 'value="/live"' in text
    assert page.headers["Content-Security-Policy"] == "default-src 'self'"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in text

    async with console.http.post(f"{console.origin}/login",
                                 data={"token": TOKEN, "next": "/live"},
                                 allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/live"
        cookie = set_cookie_header(resp.headers)
        value = resp.cookies[SESSION_COOKIE].value
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert f"max-age={TTL_S}" in flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    assert TOKEN not in value

    status, body = await console.request("GET", "/api/calls", cookie=value)
    assert status == 200 and body["calls"] == []
    status, info = await console.request("GET", "/api/console/session", cookie=value)
    assert status == 200
    assert info["authenticated"] is True and len(info["csrf_token"]) >= 32
    assert info["expires_at"] == "2025-06-15T16:06:40Z"  # the test clock plus an hour
    status, text = await console.request("GET", "/live", cookie=value)
    assert (status, text) == (200, "<p>live calls</p>")
    # Logged in, the login page goes straight on.
    status, _ = await console.request("GET", "/login?next=/live", cookie=value)
    assert status == 303


@pytest.mark.parametrize(
    "options, headers",
    [
        ({"trust_proxy_headers": True}, {"X-Forwarded-Proto": "https"}),
        ({"public_http_url": "https://voice.example.com"}, {}),
    ],
    ids=["behind-a-tls-proxy", "public-https-url"],
)
async def test_the_cookie_is_secure_when_the_console_is_reached_over_https(
    start_console: StartConsole, options: dict[str, Any], headers: dict[str, str]
) -> None:
    console = await start_console(**options)
    async with console.http.post(f"{console.origin}/login", data={"token": TOKEN},
                                 headers=headers, allow_redirects=False) as resp:
        assert resp.status == 303
        assert "secure" in [p.strip().lower() for p in set_cookie_header(resp.headers).split(";")]


async def test_a_proxy_header_is_ignored_unless_trusted(console: Console) -> None:
    async with console.http.post(f"{console.origin}/login", data={"token": TOKEN},
                                 headers={"X-Forwarded-Proto": "https"},
                                 allow_redirects=False) as resp:
        assert "secure" not in set_cookie_header(resp.headers).lower()


async def test_a_wrong_token_is_refused_and_guessing_is_rate_limited(console: Console) -> None:
    for _ in range(LOGIN_ATTEMPTS_PER_MINUTE):
        async with console.http.post(f"{console.origin}/login", data={"token": "guess"},
                                     allow_redirects=False) as resp:
            assert resp.status == 401
            assert "not the operator token" in await resp.text()
            assert SESSION_COOKIE not in resp.cookies
    async with console.http.post(f"{console.origin}/login", data={"token": TOKEN},
                                 allow_redirects=False) as resp:
        # Even the right token waits: the limit is per address, not per guess.
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert SESSION_COOKIE not in resp.cookies
    status, _ = await console.request("GET", f"/login?token={TOKEN}")
    assert status == 429


async def test_an_empty_or_unreadable_login_form_is_refused_plainly(console: Console) -> None:
    status, text = await console.request("POST", "/login")
    assert status == 401 and "Enter the operator token" in text
    async with console.http.post(
        f"{console.origin}/login", data=b"token=x",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=no-such"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 400


async def test_the_one_click_link_logs_in_and_leaves_the_address_bar(console: Console) -> None:
    status, _ = await console.request("GET", "/login?token=wrong-token")
    assert status == 401
    async with console.http.get(f"{console.origin}/login?token={TOKEN}&next=/live",
                                allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/live"
        assert resp.headers["Cache-Control"] == "no-store"
        value = resp.cookies[SESSION_COOKIE].value
    status, _ = await console.request("GET", "/api/calls", cookie=value)
    assert status == 200


async def test_pages_send_a_visitor_without_a_session_to_the_login(console: Console) -> None:
    async with console.http.get(f"{console.origin}/live?call=abc",
                                allow_redirects=False) as resp:
        assert resp.status == 303
        location = URL(resp.headers["Location"])
        assert (location.path, location.query["next"]) == ("/login", "/live?call=abc")
    async with console.http.get(f"{console.origin}/live?call=abc") as resp:
        assert resp.url.path == "/login"
        assert 'value="/live?call=abc"' in await resp.text()


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
     "evil.example", "javascript:alert(1)", "/%0d%0aSet-Cookie:x", "/\r\nLocation: x",
     "/login?next=//evil.example", ""],
)
async def test_next_never_leaves_the_console(console: Console, next_path: str) -> None:
    async with console.http.post(f"{console.origin}/login",
                                 data={"token": TOKEN, "next": next_path},
                                 allow_redirects=False) as resp:
        assert resp.status == 303
        location = resp.headers["Location"]
    assert location == safe_next(next_path)
    assert location.startswith("/") and not location.startswith("//")
    assert "\\" not in location and "\n" not in location
    if "evil" in next_path or not next_path.startswith("/"):
        assert location == "/"


def test_a_path_on_the_console_is_kept_as_next() -> None:
    assert safe_next("/calls/call-1?tab=events") == "/calls/call-1?tab=events"
    assert safe_next("/live") == "/live"


# ---------------------------------------------------------------------- cross-site writes


async def test_cookie_writes_need_the_console_origin_and_the_csrf_token(
    start_console: StartConsole,
) -> None:
    console = await start_console(allowed_origins=("https://ops.example.com",))
    cookie, csrf = await console.login()
    body = {"to": "+15551230000"}

    async def write(**headers: str) -> tuple[int, Any]:
        return await console.request("POST", OUTBOUND_PATH, cookie=cookie, json=body, **headers)

    status, refusal = await write()
    assert (status, refusal["error"]) == (403, "csrf")
    assert "neither Origin nor Referer" in refusal["message"]
    status, refusal = await write(Origin="https://evil.example", **{"X-CSRF-Token": csrf})
    assert status == 403 and "Origin 'https://evil.example'" in refusal["message"]
    status, refusal = await write(Origin="null", **{"X-CSRF-Token": csrf})
    assert status == 403
    status, refusal = await write(Origin=console.origin)
    assert status == 403 and "X-CSRF-Token" in refusal["message"]
    status, refusal = await write(Origin=console.origin, **{"X-CSRF-Token": csrf[:-2] + "xx"})
    assert status == 403 and "X-CSRF-Token" in refusal["message"]

    # Both checks pass: the route runs (503: no SIP device in this test).
    assert (await write(Origin=console.origin, **{"X-CSRF-Token": csrf}))[0] == 503
    referer = f"{console.origin}/live?x=1"
    assert (await write(Referer=referer, **{"X-CSRF-Token": csrf}))[0] == 503
    assert (await write(Origin="https://ops.example.com", **{"X-CSRF-Token": csrf}))[0] == 503
    # Another session's CSRF token is no good for this one.
    _, other_csrf = await console.login()
    status, _ = await write(Origin=console.origin, **{"X-CSRF-Token": other_csrf})
    assert status == 403


async def test_a_login_posted_from_another_site_is_refused(console: Console) -> None:
    async with console.http.post(f"{console.origin}/login", data={"token": TOKEN},
                                 headers={"Origin": "https://evil.example"},
                                 allow_redirects=False) as resp:
        assert resp.status == 403
        assert SESSION_COOKIE not in resp.cookies


# ---------------------------------------------------------------------- bad sessions


async def test_a_tampered_expired_or_re_keyed_cookie_is_refused(
    start_console: StartConsole,
) -> None:
    console = await start_console()
    cookie, _ = await console.login()
    version, issued, expires, session_id, mac = cookie.split(".")
    forged = [
        f"{version}.{issued}.{int(expires) + 86400}.{session_id}.{mac}",  # a longer life
        f"{version}.{issued}.{expires}.{session_id[:-1]}A.{mac}",  # another session
        f"{version}.{issued}.{expires}.{session_id}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "garbage", "1.2.3", "." * 300,
    ]
    for value in forged:
        status, body = await console.request("GET", "/api/calls", cookie=value)
        assert (status, body["error"]) == (401, "unauthorized"), value
        assert "not valid" in body["message"]

    console.clock.now += TTL_S - 1
    assert (await console.request("GET", "/api/calls", cookie=cookie))[0] == 200
    console.clock.now += 1
    status, body = await console.request("GET", "/api/calls", cookie=cookie)
    assert status == 401 and "expired" in body["message"]

    # A new operator token ends every session signed with the old one.
    rekeyed = await start_console(token="a-new-operator-token-after-rotation-02")
    fresh, _ = await console.login()
    rekeyed.clock.now = console.clock.now  # well inside the cookie's lifetime
    status, body = await rekeyed.request("GET", "/api/calls", cookie=fresh)
    assert status == 401 and "not valid" in body["message"]


async def test_logout_clears_the_cookie_and_a_kept_copy_stops_working(
    console: Console,
) -> None:
    cookie, csrf = await console.login()
    status, refusal = await console.request("POST", "/logout", cookie=cookie)
    assert (status, refusal["error"]) == (403, "csrf")

    async with console.http.post(
        f"{console.origin}/logout",
        headers={"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": console.origin,
                 "X-CSRF-Token": csrf},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 204
        cleared = [p.strip().lower() for p in set_cookie_header(resp.headers).split(";")]
    assert cleared[0] == f'{SESSION_COOKIE}=""' and "max-age=0" in cleared
    status, body = await console.request("GET", "/api/calls", cookie=cookie)
    assert status == 401 and "logged out" in body["message"]
    # Other sessions carry on.
    other, _ = await console.login()
    assert (await console.request("GET", "/api/calls", cookie=other))[0] == 200
