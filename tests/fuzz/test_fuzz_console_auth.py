"""Fuzzing the console's login and its checks over real HTTP: refusals only, never a 500.

Whatever a client puts in the session cookie, ``Authorization``, ``Origin``, ``Referer``,
``X-CSRF-Token`` or the login form, the answer is a JSON 401/403 (or the login page),
nothing gets in without the token, and the login's redirect never leaves the console.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.security.rate_limit import AddressRateLimiter
from tests.fuzz import EXAMPLES
from webhooks.console_auth import CSRF_HEADER, SESSION_COOKIE, ConsoleAuth
from webhooks.login_page import add_login_routes
from webhooks.outbound_api import OUTBOUND_PATH, add_outbound_route

TOKEN = "operator-token-for-the-console-fuzz-0001"

# What an HTTP header can carry: visible ASCII and spaces, Latin-1 too (aiohttp sends
# header values as Latin-1), and pieces of the real formats to stay near valid input.
HEADER_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
            max_size=300),
    st.sampled_from(["null", "http://127.0.0.1", "https://evil.example", "http://[::1]:80",
                     "http://127.0.0.1:99999", "Bearer ", f"Bearer {TOKEN[:-1]}", "1.2.3.4.5",
                     "1." + "9" * 20 + ".1.abcdefghijklmnop.x"]),
)


@dataclass
class Plane:
    """The running control plane, a client, and one valid session."""

    base: str
    http: aiohttp.ClientSession
    cookie: str
    csrf: str


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    auth = ConsoleAuth(TOKEN, session_ttl_s=3600)
    app = web.Application()
    # Every example is a login attempt from one address: the real limit would refuse them.
    add_login_routes(app, auth, limiter=AddressRateLimiter(1_000_000, 1_000_000))
    add_outbound_route(app, None, auth=auth)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    cookie, session = auth.new_session()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            yield Plane(str(server.make_url("")).rstrip("/"), http, cookie, session.csrf_token)
    finally:
        await server.close()


@settings(max_examples=100 * EXAMPLES)
@given(cookie=st.none() | HEADER_TEXT | st.just("valid"), origin=st.none() | HEADER_TEXT,
       referer=st.none() | HEADER_TEXT, csrf=st.none() | HEADER_TEXT | st.just("valid"),
       authorization=st.none() | HEADER_TEXT)
async def test_a_write_gets_in_only_with_the_credentials(
    plane: Plane, cookie: str | None, origin: str | None, referer: str | None,
    csrf: str | None, authorization: str | None,
) -> None:
    headers: dict[str, str] = {}
    if cookie is not None:
        value = plane.cookie if cookie == "valid" else cookie.replace(";", "")
        headers["Cookie"] = f"{SESSION_COOKIE}={value}"
    for name, header in (("Origin", origin), ("Referer", referer),
                         ("Authorization", authorization)):
        if header is not None:
            headers[name] = header
    if csrf is not None:
        headers[CSRF_HEADER] = plane.csrf if csrf == "valid" else csrf
    async with plane.http.post(plane.base + OUTBOUND_PATH, json={"to": "+15551230000"},
                               headers=headers) as resp:
        status, content_type = resp.status, resp.content_type
        body = await resp.json() if content_type == "application/json" else None
    # 503 is the route itself (no SIP device): the request was let through.
    assert status in (401, 403, 503), (status, body)
    assert content_type == "application/json" and isinstance(body, dict)
    if status == 503:
        assert authorization is None and cookie == "valid" and csrf == "valid"
    else:
        assert body["error"] == ("unauthorized" if status == 401 else "csrf")
        assert body["message"]


@settings(max_examples=100 * EXAMPLES)
@given(token=HEADER_TEXT, next_path=HEADER_TEXT)
async def test_the_login_form_never_lets_a_wrong_token_in_nor_redirects_away(
    plane: Plane, token: str, next_path: str,
) -> None:
    right = token == TOKEN
    async with plane.http.post(plane.base + "/login", data={"token": token, "next": next_path},
                               allow_redirects=False) as resp:
        status, location = resp.status, resp.headers.get("Location")
        page = await resp.text()
        cookies = resp.cookies
    if status == 303:
        assert right and SESSION_COOKIE in cookies
        assert location is not None and location.startswith("/")
        assert not location.startswith("//") and "\\" not in location
    else:
        assert status == 401 and SESSION_COOKIE not in cookies
        # What the client sent comes back only escaped, inside the form.
        assert "<script" not in page.lower()
        assert html.escape(next_path, quote=True) in page or 'value="/"' in page
