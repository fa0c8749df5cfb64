"""The console in a real headless Chromium: refusal without login, the one-click login,
a call shown live and then in history (transcript, latency plot, recording), and the talk
page calling the bot from a fake microphone (a WAV file) with the bot's answer captured
as played and transcribed. Screenshots of each page go to var/screenshots/."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.browser_page import (
    CHROMIUM,
    SPEAK_INTO_MICROPHONE,
    TAP_SPEAKERS,
    caller_voice,
    caller_voice_b64,
    chromium_args,
    write_microphone,
)
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.speech import transcribe_pcm16
from tests.browser.conftest import SCREENSHOTS, TOKEN, base_url

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (apt-get install chromium)"),
]

WAIT_MS = 30_000
QUESTION = "What time do you open tomorrow?"
INTERRUPTION = "Sorry, can I speak to a manager please?"
SOFTPHONE = Path(__file__).resolve().parents[2] / "webhooks" / "static" / "js" / "softphone.js"
DOC_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "console.png"


async def fake_microphone(path: Path) -> None:
    """A WAV the browser hears as its microphone: silence, the caller's question in a
    second voice, then a minute of silence (longer than any test here; the file loops).
    The interruption is spoken later, through `SPEAK_INTO_MICROPHONE`."""
    write_microphone(path, 4.0, await caller_voice(QUESTION), 60.0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[object]:
    """Chromium, headless, with the fake microphone and autoplay allowed."""
    with tempfile.TemporaryDirectory(prefix="rv-browser-") as tmp:
        mic = Path(tmp) / "mic.wav"
        await fake_microphone(mic)
        async with playwright_api.async_playwright() as pw:
            chromium = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=chromium_args(mic))
            try:
                yield chromium
            finally:
                await chromium.close()


async def new_page(browser: object, server: VoiceServer, *, logged_in: bool) -> object:
    context = await browser.new_context(  # type: ignore[attr-defined]
        base_url=base_url(server), viewport={"width": 1280, "height": 860},
        permissions=["microphone"],
    )
    await context.add_init_script(TAP_SPEAKERS)
    await context.add_init_script(SPEAK_INTO_MICROPHONE)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    if logged_in:
        await page.goto(f"/login?token={TOKEN}&next=/live")
        await page.wait_for_url("**/live")
    return page


async def screenshot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


async def test_pages_refuse_without_login(browser: object, console_server: VoiceServer) -> None:
    page = await new_page(browser, console_server, logged_in=False)
    for path in ("/", "/live", "/calls", "/calls/some-call"):
        await page.goto(path)  # type: ignore[attr-defined]
        await page.wait_for_url("**/login?next=**")  # type: ignore[attr-defined]
    await screenshot(page, "login")
    response = await page.request.get("/api/calls/live")  # type: ignore[attr-defined]
    assert response.status == 401
    await page.context.close()  # type: ignore[attr-defined]


async def test_a_call_live_then_in_history(browser: object, console_server: VoiceServer) -> None:
    page = await new_page(browser, console_server, logged_in=True)
    await page.wait_for_selector("body[data-ready]")  # type: ignore[attr-defined]
    caller = SimulatedCaller(CallOptions(
        http_url=base_url(console_server), transcribe_bot=False, end_after_last_line_s=1.0,
    ))
    call = asyncio.create_task(caller.run([
        CallerLine("What time do you open?"), CallerLine("Thank you, goodbye"),
    ]))
    try:
        row = page.locator(f'#live-calls tr[data-call-id="{caller.options.call_id}"]')  # type: ignore[attr-defined]
        await row.wait_for()
        await page.locator('#transcript li[data-role="caller"]').first.wait_for()  # type: ignore[attr-defined]
        assert "open" in (await page.locator("#transcript").inner_text()).lower()  # type: ignore[attr-defined]
        await screenshot(page, "live")
        if os.environ.get("UPDATE_DOC_SCREENSHOT"):
            # The README's picture of the console is this page, refreshed on request
            # (UPDATE_DOC_SCREENSHOT=1) so that a test run leaves the tree clean.
            shutil.copyfile(SCREENSHOTS / "live.png", DOC_SCREENSHOT)
        report = await asyncio.wait_for(call, 60)
        await row.wait_for(state="detached")
    finally:
        if not call.done():
            call.cancel()
    call_id = report.call_id
    # History lists the call once the recorder has written its end (a moment after).
    async def ended() -> None:
        while True:
            response = await page.request.get(f"/api/calls/{call_id}")  # type: ignore[attr-defined]
            if response.ok and (await response.json())["ended_at"]:
                return
            await asyncio.sleep(0.1)
    await asyncio.wait_for(ended(), 15)
    await page.goto("/calls")  # type: ignore[attr-defined]
    listed = page.locator(f'#calls tr[data-call-id="{call_id}"]')  # type: ignore[attr-defined]
    await listed.wait_for()
    await screenshot(page, "calls")
    await listed.locator("a").click()
    await page.wait_for_url(f"**/calls/{call_id}")  # type: ignore[attr-defined]
    await page.wait_for_selector("body[data-ready]")  # type: ignore[attr-defined]
    text = (await page.locator("#transcript").inner_text()).lower()  # type: ignore[attr-defined]
    assert "open" in text
    assert await page.locator('#transcript li[data-role="bot"]').count() >= 1  # type: ignore[attr-defined]
    # Chart.js drew both plots (a canvas it owns has a chart instance).
    drawn = await page.evaluate(  # type: ignore[attr-defined]
        "['latency-chart', 'latency-dist'].map((id) => !!window.Chart.getChart(id))")
    assert drawn == [True, True]
    detail = await (await page.request.get(f"/api/calls/{call_id}")).json()  # type: ignore[attr-defined]
    # Recordings are on in this server: the call's is listed and plays in the page.
    assert detail["recording"], detail
    audio = page.locator("audio#recording")  # type: ignore[attr-defined]
    await audio.wait_for()
    duration = await audio.evaluate(
        "(a) => new Promise((ok) => a.readyState >= 1 ? ok(a.duration)"
        " : a.addEventListener('loadedmetadata', () => ok(a.duration)))")
    assert duration > 1.0
    await screenshot(page, "call")
    await page.context.close()  # type: ignore[attr-defined]


@pytest.mark.skipif(not SOFTPHONE.exists(),
                    reason="the softphone (webhooks/static/js/softphone.js) is missing")
async def test_talk_page_calls_the_bot(browser: object, console_server: VoiceServer) -> None:
    page = await new_page(browser, console_server, logged_in=True)
    await page.goto("/")  # type: ignore[attr-defined]
    await page.wait_for_selector("body[data-ready]")  # type: ignore[attr-defined]
    await page.select_option("#flow", "restaurant")  # type: ignore[attr-defined]
    await page.click("#call")  # type: ignore[attr-defined]
    caller_line = page.locator('#transcript li[data-role="caller"]').first  # type: ignore[attr-defined]
    await caller_line.wait_for()
    assert "open" in (await caller_line.inner_text()).lower()
    interruption = await caller_voice_b64(INTERRUPTION)
    # The caller talks over the answer once a second of it has been heard (so the cut
    # line has words) and while it is still playing.
    await page.evaluate(  # type: ignore[attr-defined]
        "() => { window.__firstLoud = null; window.__armedAt = performance.now(); }")
    await page.wait_for_function(  # type: ignore[attr-defined]
        "() => window.__firstLoud !== null && performance.now() - window.__firstLoud > 1000"
        " && performance.now() - window.__loudAt < 100")
    await page.evaluate("(b64) => window.__say(b64)", interruption)  # type: ignore[attr-defined]
    # Talking over the answer cut it: a bot line is marked interrupted.
    try:
        cut = page.locator('#transcript li[data-role="bot"]', has_text="interrupted")  # type: ignore[attr-defined]
        await cut.first.wait_for()
    except Exception:
        await screenshot(page, "talk-failed")
        said = await page.locator("#transcript").inner_text()  # type: ignore[attr-defined]
        listed = await (await page.request.get("/api/calls?limit=1")).json()  # type: ignore[attr-defined]
        call = listed["calls"][0]["call_id"] if listed["calls"] else ""
        detail = await (await page.request.get(f"/api/calls/{call}")).json()  # type: ignore[attr-defined]
        raise AssertionError(f"{said}\nthe call's record: {detail}") from None
    await screenshot(page, "talk")
    played = np.array(await page.evaluate("window.__played"), dtype=np.int16)  # type: ignore[attr-defined]
    await page.click("#hangup")  # type: ignore[attr-defined]
    assert played.size > 16_000 and int(np.abs(played).max()) > 1000, "no bot audio was played"
    heard = await transcribe_pcm16(played)
    assert heard.strip(), "the played audio held no words"
    await page.context.close()  # type: ignore[attr-defined]


