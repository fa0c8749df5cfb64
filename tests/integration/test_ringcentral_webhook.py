"""POST /api/ringcentral/webhook over real HTTP (docs/PROTOCOLS.md §4, docs/RINGCENTRAL.md §1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ai_pipeline.rule_responder import RuleBasedResponder
from realtime_voice.audio.format import AudioFormat
from realtime_voice.config import Settings
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.manager import CallSessionManager
from realtime_voice.session.session import CallSession
from realtime_voice.session.state import CallState
from realtime_voice.testing.fake_leg import FakeLeg
from realtime_voice.testing.fake_speech import ToneTextToSpeech
from realtime_voice.testing.ringcentral_notify import (
    WebhookNotifier,
    telephony_notification,
    validate_webhook,
)
from webhooks.ringcentral import (
    WEBHOOK_PATH,
    MemoryCallEventSink,
    RingCentralWebhook,
    add_ringcentral_routes,
)
from webhooks.ringcentral_events import TelephonySessionEvent

TOKEN = "3b1f0c9e8d6a4f21a7c55e0d2b9c4e11"


@dataclass
class Rig:
    url: str
    webhook: RingCentralWebhook
    sink: MemoryCallEventSink
    manager: CallSessionManager
    notifier: WebhookNotifier
    http: aiohttp.ClientSession


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("server_options")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    sink = options.pop("sink", None) or MemoryCallEventSink()
    manager = CallSessionManager(max_calls=10)
    webhook = RingCentralWebhook(
        verification_token=options.pop("verification_token", TOKEN),
        sink=sink,
        manager=manager,
        **options,
    )
    app = web.Application()
    add_ringcentral_routes(app, webhook)
    server = TestServer(app)
    await server.start_server()
    url = str(server.make_url(WEBHOOK_PATH))
    async with aiohttp.ClientSession() as http:
        try:
            yield Rig(url, webhook, sink, manager, WebhookNotifier(http, url, TOKEN), http)
        finally:
            await server.close()


def kinds(sink: MemoryCallEventSink) -> list[str]:
    return [record.kind for record in sink.events]


# ------------------------------------------------------------------ handshake


async def test_handshake_is_answered_byte_for_byte(rig: Rig) -> None:
    result = await validate_webhook(rig.url, token="6a0f-handshake-token")
    assert result.status == 200
    assert result.echoed_token == "6a0f-handshake-token"
    assert result.content_type == "application/json"
    assert result.body == b""
    assert result.raw_size <= 1024
    assert result.ok, result.problems
    await rig.webhook.join()
    assert rig.sink.events == []


async def test_handshake_needs_no_verification_token_and_fits_with_a_long_token(
    rig: Rig,
) -> None:
    long_token = "t" * 500
    result = await validate_webhook(rig.url, token=long_token)
    assert result.echoed_token == long_token
    assert result.raw_size <= 1024, result.raw_size
    assert result.ok, result.problems


@pytest.mark.server_options(verification_token=None)
async def test_handshake_works_before_a_token_is_configured(rig: Rig) -> None:
    assert (await validate_webhook(rig.url)).ok


# ------------------------------------------------------------------ verification


@pytest.mark.parametrize("header", [None, "wrong-token", ""])
async def test_wrong_or_missing_verification_token_is_401_and_nothing_recorded(
    rig: Rig, header: str | None
) -> None:
    tsid = rig.notifier.new_call()
    notifier = WebhookNotifier(rig.http, rig.url, header)
    assert await notifier.send(rig.notifier.event(tsid, "Proceeding")) == 401
    await rig.webhook.join()
    assert rig.sink.events == []
    assert rig.webhook.leg(tsid) is None


@pytest.mark.server_options(verification_token=None)
async def test_notifications_are_refused_while_no_token_is_configured(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    assert await rig.notifier.status(tsid, "Proceeding") == 401
    await rig.webhook.join()
    assert rig.sink.events == []


async def test_token_under_the_validation_header_name_is_accepted(rig: Rig) -> None:
    # The current docs page names the notification header Validation-Token (§1.3).
    tsid = rig.notifier.new_call()
    body = json.dumps(rig.notifier.event(tsid, "Proceeding"))
    async with rig.http.post(rig.url, data=body, headers={"Validation-Token": TOKEN}) as resp:
        assert resp.status == 200
        assert "Validation-Token" not in resp.headers
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing"]


# ------------------------------------------------------------------ call record


async def test_a_call_rings_is_answered_and_ends_with_its_reason(rig: Rig) -> None:
    tsid = rig.notifier.new_call(from_number="+14155550199")
    for status, reason in (("Proceeding", None), ("Answered", None),
                           ("Disconnected", "CallFinished")):
        assert await rig.notifier.status(tsid, status, reason) == 200
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing", "answered", "ended"]
    assert rig.sink.end_reasons[tsid] == "CallFinished"
    ringing = rig.sink.events[0].event
    assert ringing.telephony_session_id == tsid
    assert ringing.party is not None
    assert ringing.party.from_number == "+14155550199"
    assert ringing.party.direction == "Inbound"
    leg = rig.webhook.leg(tsid)
    assert leg is not None
    assert (leg.party_id, leg.status_code, leg.reason) == (
        rig.notifier.party_id(tsid), "Disconnected", "CallFinished"
    )


async def test_gone_without_reason_ends_with_the_status_code(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    await rig.notifier.status(tsid, "Proceeding")
    await rig.notifier.status(tsid, "Gone")
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing", "ended"]
    assert rig.sink.end_reasons[tsid] == "Gone"


async def test_duplicate_uuid_is_applied_once(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    ringing = rig.notifier.event(tsid, "Proceeding")
    assert await rig.notifier.send(ringing) == 200
    assert await rig.notifier.send(ringing) == 200
    answered = rig.notifier.event(tsid, "Answered")
    assert await rig.notifier.send(answered) == 200
    assert await rig.notifier.send(answered) == 200
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing", "answered"]
    assert rig.webhook.stats.duplicates == 2


async def test_out_of_order_notifications_are_applied_in_sequence(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    first = rig.notifier.event(tsid, "Proceeding")  # sequence 1
    second = rig.notifier.event(tsid, "Answered")  # sequence 2
    third = rig.notifier.event(tsid, "Disconnected", "CallFinished")  # sequence 3
    for note in (third, second, first):
        assert await rig.notifier.send(note) == 200
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing", "answered", "ended"]
    assert [r.event.sequence for r in rig.sink.events] == [1, 2, 3]
    assert rig.sink.states[tsid] == "ended"


@pytest.mark.server_options(reorder_window_s=0.0)
async def test_a_notification_later_than_a_newer_one_is_dropped(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    ringing = rig.notifier.event(tsid, "Proceeding")
    answered = rig.notifier.event(tsid, "Answered")
    ended = rig.notifier.event(tsid, "Disconnected", "CallFinished")
    for note in (ringing, ended, answered):
        assert await rig.notifier.send(note) == 200
    await rig.webhook.join()
    # Answered came after the call had already ended: the record stays ended.
    assert kinds(rig.sink) == ["ringing", "ended"]
    assert rig.sink.states[tsid] == "ended"
    assert rig.webhook.stats.late == 1


async def test_sessions_are_ordered_independently(rig: Rig) -> None:
    a, b = rig.notifier.new_call(), rig.notifier.new_call()
    a1, a2 = rig.notifier.event(a, "Proceeding"), rig.notifier.event(a, "Answered")
    b1, b2 = rig.notifier.event(b, "Proceeding"), rig.notifier.event(b, "Gone")
    for note in (b2, a2, a1, b1):
        assert await rig.notifier.send(note) == 200
    await rig.webhook.join()
    per_session: dict[str, list[str]] = {}
    for record in rig.sink.events:
        per_session.setdefault(record.event.telephony_session_id, []).append(record.kind)
    assert per_session == {a: ["ringing", "answered"], b: ["ringing", "ended"]}


class _BlockingSink(MemoryCallEventSink):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def ringing(self, event: TelephonySessionEvent) -> None:
        self.entered.set()
        await self.release.wait()
        await super().ringing(event)


async def test_reply_does_not_wait_for_the_work() -> None:
    sink = _BlockingSink()
    webhook = RingCentralWebhook(verification_token=TOKEN, sink=sink, reorder_window_s=0.0)
    app = web.Application()
    add_ringcentral_routes(app, webhook)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            notifier = WebhookNotifier(http, str(server.make_url(WEBHOOK_PATH)), TOKEN)
            tsid = notifier.new_call()
            assert await notifier.status(tsid, "Proceeding") == 200
            await sink.entered.wait()
            # The sink is still blocked on the first event and the next reply comes anyway.
            assert await notifier.status(tsid, "Answered") == 200
            assert sink.events == []
            sink.release.set()
            await webhook.join()
            assert kinds(sink) == ["ringing", "answered"]
    finally:
        await server.close()


class _FailingSink(MemoryCallEventSink):
    async def answered(self, event: TelephonySessionEvent) -> None:
        raise RuntimeError("database unreachable")


@pytest.mark.server_options(sink=_FailingSink())
async def test_a_failing_sink_does_not_stop_later_events(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    for status, reason in (("Proceeding", None), ("Answered", None),
                           ("Disconnected", "CallFinished")):
        assert await rig.notifier.status(tsid, status, reason) == 200
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing", "ended"]
    assert rig.webhook.stats.sink_errors == 1


async def test_other_event_types_are_acknowledged_and_ignored(rig: Rig) -> None:
    reminder = {
        "uuid": "7321456",
        "event": "/restapi/v1.0/subscription/~?threshold=86400&interval=3600",
        "timestamp": "2026-05-04T15:02:11.918Z",
        "subscriptionId": "41ce2002-063c-4c17-9132-758de6e0bd38",
        "body": {"id": "41ce2002", "expirationTime": "2026-05-05T15:02:11.918Z"},
    }
    assert await rig.notifier.send(reminder) == 200
    await rig.webhook.join()
    assert rig.sink.events == []
    assert rig.webhook.stats.ignored == 1


# ------------------------------------------------------------------ malformed input


def _note(**changes: Any) -> dict[str, Any]:
    note = telephony_notification(
        telephony_session_id="s-odd", party_id="p-odd-2", sequence=1, status="Proceeding"
    )
    for path, value in changes.items():
        target: Any = note
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return note


_DELETE = object()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_note(uuid=_DELETE), "uuid"),
        (_note(uuid=12), "uuid"),
        (_note(body=_DELETE), "body"),
        (_note(body="x"), "body"),
        (_note(body__sequence="3"), "body.sequence"),
        (_note(body__sequence=True), "body.sequence"),
        (_note(body__sequence=-1), "body.sequence"),
        (_note(body__telephonySessionId=_DELETE), "body.telephonySessionId"),
        (_note(body__telephonySessionId=""), "body.telephonySessionId"),
        (_note(body__parties={"id": "p"}), "body.parties"),
        (_note(body__parties__0="p"), "body.parties[0]"),
        (_note(body__parties__0__id=_DELETE), "body.parties[0].id"),
        (_note(body__parties__0__status=_DELETE), "body.parties[0].status"),
        (_note(body__parties__0__status__code=5), "body.parties[0].status.code"),
        (_note(body__parties__0__status__reason=[]), "body.parties[0].status.reason"),
        (_note(body__parties__0__from="+1555"), "body.parties[0].from"),
        (_note(body__parties__0__to__phoneNumber=1555), "body.parties[0].to.phoneNumber"),
        (_note(body__parties__0__missedCall="no"), "body.parties[0].missedCall"),
    ],
)
async def test_odd_shapes_are_400_naming_the_field(
    rig: Rig, body: dict[str, Any], field: str
) -> None:
    async with rig.http.post(
        rig.url, data=json.dumps(body), headers={"Verification-Token": TOKEN}
    ) as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert answer["field"] == field
    assert field in answer["error"]
    await rig.webhook.join()
    assert rig.sink.events == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b"", b"null"])
async def test_malformed_json_is_400(rig: Rig, raw: bytes) -> None:
    async with rig.http.post(rig.url, data=raw, headers={"Verification-Token": TOKEN}) as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert answer["error"]
    await rig.webhook.join()
    assert rig.sink.events == []


async def test_a_refused_notification_can_be_sent_again(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    note = rig.notifier.event(tsid, "Proceeding")
    wrong = WebhookNotifier(rig.http, rig.url, "wrong")
    assert await wrong.send(note) == 401
    assert await rig.notifier.send(note) == 200  # the uuid was not burnt by the refusal
    await rig.webhook.join()
    assert kinds(rig.sink) == ["ringing"]


async def test_oversized_body_is_413(rig: Rig) -> None:
    async with rig.http.post(
        rig.url, data=b"x" * (300 * 1024), headers={"Verification-Token": TOKEN}
    ) as resp:
        assert resp.status == 413


# ------------------------------------------------------------------ live sessions


def live_session(manager: CallSessionManager, call_id: str) -> tuple[CallSession, FakeLeg]:
    """A real, admitted (not started) session on a fake leg that records its close."""

    def no_stt(fmt: AudioFormat) -> Any:
        raise AssertionError("the session is never started in these tests")

    engines = SpeechEngines(
        make_stt=no_stt,
        make_tts=lambda fmt, voice=None: ToneTextToSpeech(fmt),
        responder=RuleBasedResponder(),
        stt_name="none",
        tts_name="none",
    )
    leg = FakeLeg()
    session = CallSession(
        call_id=call_id,
        session_id="sess-1",
        from_number="+14155550123",
        to_number="+16505550100",
        leg=leg,
        settings=Settings(),
        engines=engines,
    )
    manager.admit(session)
    return session, leg


@pytest.mark.parametrize(
    ("rc_reason", "ours"),
    [("CallFinished", "caller_hangup"), ("BlindTransfer", "transferred")],
)
async def test_disconnected_ends_the_live_session(rig: Rig, rc_reason: str, ours: str) -> None:
    tsid = rig.notifier.new_call()
    session, leg = live_session(rig.manager, tsid)
    await rig.notifier.status(tsid, "Answered")
    await rig.webhook.join()
    assert not session.is_ended
    await rig.notifier.status(tsid, "Disconnected", rc_reason)
    await rig.webhook.join()
    assert session.state is CallState.ENDED
    assert session.end_reason == ours
    assert leg.closed == (ours, 1000)
    assert rig.sink.end_reasons[tsid] == rc_reason


async def test_a_bound_call_id_is_matched(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    session, _ = live_session(rig.manager, "gateway-call-77")
    rig.webhook.bind_call(tsid, "gateway-call-77")
    assert rig.webhook.call_id_for(tsid) == "gateway-call-77"
    assert rig.webhook.call_id_for("s-unbound") == "s-unbound"
    await rig.notifier.status(tsid, "Gone")
    await rig.webhook.join()
    assert session.is_ended
    leg = rig.webhook.leg_for_call("gateway-call-77")
    assert leg is not None
    assert leg.telephony_session_id == tsid


async def test_sip_data_joins_the_telephony_session_to_the_sip_call(rig: Rig) -> None:
    # A SIP leg's call is keyed by the SIP Call-ID, which sipData.callId names.
    sip_call_id = "7a3b4c21@10.13.121.60"
    tsid = rig.notifier.new_call(sip_call_id=sip_call_id)
    await rig.notifier.status(tsid, "Proceeding")  # before the INVITE: nothing to join
    await rig.webhook.join()
    assert rig.webhook.call_id_for(tsid) == tsid
    session, leg = live_session(rig.manager, sip_call_id)
    await rig.notifier.status(tsid, "Answered")
    await rig.webhook.join()
    assert rig.webhook.call_id_for(tsid) == sip_call_id
    await rig.notifier.status(tsid, "Disconnected", "CallFinished")
    await rig.webhook.join()
    assert session.is_ended and leg.closed == ("caller_hangup", 1000)


async def test_other_sessions_are_left_alone(rig: Rig) -> None:
    tsid = rig.notifier.new_call()
    bystander, bystander_leg = live_session(rig.manager, "someone-else")
    await rig.notifier.status(tsid, "Disconnected", "CallFinished")
    await rig.webhook.join()
    assert not bystander.is_ended
    assert bystander_leg.closed is None


async def test_a_body_arriving_in_pieces_is_read_whole() -> None:
    from unittest import mock

    from aiohttp import StreamReader
    from aiohttp.test_utils import make_mocked_request

    from webhooks.body import read_body

    protocol = mock.Mock(_reading_paused=False)
    stream = StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    request = make_mocked_request("POST", WEBHOOK_PATH, payload=stream)
    body = json.dumps(telephony_notification(
        telephony_session_id="s-pieces", party_id="p-1", sequence=1, status="Proceeding"
    )).encode()
    stream.feed_data(body[:100])
    reading = asyncio.create_task(read_body(request, 64 * 1024))
    await asyncio.sleep(0)  # let the reader take the first piece before the rest arrives
    stream.feed_data(body[100:])
    stream.feed_eof()
    assert await reading == body
