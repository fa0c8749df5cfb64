"""The Call Control client against the RingCentral REST simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ai_pipeline.responder import TransferTarget
from realtime_voice.config import Settings
from realtime_voice.ringcentral import (
    CallControlClient,
    CallTarget,
    RetryPolicy,
    RingCentralApiError,
    RingCentralAuthError,
    RingCentralClient,
    RingCentralConfigError,
    RingCentralConnectionError,
    RingCentralCredentials,
)
from realtime_voice.testing.ringcentral_sim import RingCentralSimulator

TSID = "s-a39d666edaab42fdaa476135027819bc"
PARTY = "p-a39d666edaab42fdaa476135027819bc-2"
PREFIX = f"/restapi/v1.0/account/~/telephony/sessions/{TSID}"
NO_WAIT = RetryPolicy(attempts=3, initial_wait_s=0.0, max_wait_s=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[RingCentralSimulator]:
    simulator = RingCentralSimulator(token_ttl_s=3600, clock=clock)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


def credentials(sim: RingCentralSimulator, **changes: str) -> RingCentralCredentials:
    values = {
        "server_url": sim.url,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "jwt": sim.jwt,
        **changes,
    }
    return RingCentralCredentials(**values)


@pytest.fixture
async def client(sim: RingCentralSimulator, clock: Clock) -> AsyncIterator[RingCentralClient]:
    async with aiohttp.ClientSession() as http:
        rc = RingCentralClient(credentials(sim), http=http, retry=NO_WAIT, clock=clock)
        yield rc
        await rc.aclose()


def api_requests(sim: RingCentralSimulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sim.requests if not r.path.endswith("/oauth/token")]


async def test_transfer_request_path_body_and_bearer(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    party = await CallControlClient(client).transfer(
        TSID, PARTY, TransferTarget(phone_number="+15555550100")
    )
    (token_req,) = sim.token_requests
    assert token_req.form() == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": sim.jwt,
    }
    basic = base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()
    assert token_req.headers["Authorization"] == f"Basic {basic}"
    assert token_req.status == 200
    (call,) = sim.requests_to("POST", "/transfer")
    assert call.path == f"{PREFIX}/parties/{PARTY}/transfer"
    assert call.json() == {"phoneNumber": "+15555550100"}
    assert call.headers["Content-Type"].startswith("application/json")
    issued = token_req_json_token(sim)
    assert call.bearer == issued
    assert call.status == 200
    assert party["id"] == PARTY
    assert (sim.party(TSID, PARTY).status, sim.party(TSID, PARTY).reason) == (
        "Disconnected",
        "BlindTransfer",
    )


def token_req_json_token(sim: RingCentralSimulator) -> str:
    # The simulator issues one token per request; the client must use the latest one.
    bearers = {r.bearer for r in sim.requests if r.bearer}
    assert len(bearers) == 1
    return bearers.pop()


@pytest.mark.parametrize(
    ("target", "body"),
    [
        (TransferTarget(extension_number="104"), {"extensionNumber": "104"}),
        (CallTarget(voicemail="684351005"), {"voicemail": "684351005"}),
        (CallTarget(park_orbit="801"), {"parkOrbit": "801"}),
    ],
)
async def test_transfer_targets(
    sim: RingCentralSimulator,
    client: RingCentralClient,
    target: TransferTarget | CallTarget,
    body: dict[str, str],
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    await CallControlClient(client).transfer(TSID, PARTY, target)
    assert sim.requests_to("POST", "/transfer")[0].json() == body


async def test_forward_a_ringing_party(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Proceeding")
    await CallControlClient(client).forward(TSID, PARTY, CallTarget(extension_number="104"))
    (call,) = sim.requests_to("POST", "/forward")
    assert call.path == f"{PREFIX}/parties/{PARTY}/forward"
    assert call.json() == {"extensionNumber": "104"}
    assert sim.party(TSID, PARTY).status == "Disconnected"


async def test_forward_refuses_a_park_orbit_before_sending(client: RingCentralClient) -> None:
    with pytest.raises(ValueError, match="forward"):
        await CallControlClient(client).forward(TSID, PARTY, CallTarget(park_orbit="801"))


async def test_forward_after_answer_is_an_api_error_not_retried(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    with pytest.raises(RingCentralApiError) as info:
        await CallControlClient(client).forward(
            TSID, PARTY, CallTarget(phone_number="+15555550100")
        )
    assert info.value.status == 409
    assert not info.value.retryable
    assert len(sim.requests_to("POST", "/forward")) == 1
    assert sim.party(TSID, PARTY).status == "Answered"


async def test_hangup_deletes_the_party(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    await CallControlClient(client).hangup(TSID, PARTY)
    assert api_requests(sim) == [("DELETE", f"{PREFIX}/parties/{PARTY}")]
    assert sim.requests[-1].status == 204
    assert sim.party(TSID, PARTY).status == "Disconnected"


async def test_end_session_and_get_session(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    control = CallControlClient(client)
    session = await control.get_session(TSID)
    assert session["id"] == TSID
    assert session["parties"][0]["status"]["code"] == "Answered"
    await control.end_session(TSID)
    assert api_requests(sim) == [("GET", PREFIX), ("DELETE", PREFIX)]


async def test_unknown_session_is_404_with_ringcentral_error_code(
    client: RingCentralClient, sim: RingCentralSimulator
) -> None:
    with pytest.raises(RingCentralApiError) as info:
        await CallControlClient(client).hangup("s-unknown", PARTY)
    assert (info.value.status, info.value.error_code) == (404, "CMN-102")
    assert len(api_requests(sim)) == 1


async def test_ids_are_escaped_into_one_path_segment(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    with pytest.raises(RingCentralApiError):
        await CallControlClient(client).hangup("s-1/parties/p-2", "x")
    assert sim.requests[-1].path.count("/parties/") == 1
    with pytest.raises(ValueError):
        await CallControlClient(client).hangup(" ", PARTY)


# ------------------------------------------------------------------ tokens


async def test_one_token_serves_many_calls(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    control = CallControlClient(client)
    await asyncio.gather(*(control.get_session(TSID) for _ in range(5)))
    assert len(sim.token_requests) == 1


async def test_token_is_renewed_before_it_expires(
    sim: RingCentralSimulator, client: RingCentralClient, clock: Clock
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    control = CallControlClient(client)
    await control.get_session(TSID)
    clock.now += 3600 - 60 - 1  # just inside the refresh margin's start
    await control.get_session(TSID)
    assert len(sim.token_requests) == 1
    clock.now += 2  # now within 60 s of expiry: renewed before the server would refuse it
    await control.get_session(TSID)
    assert len(sim.token_requests) == 2
    first, second, third = sim.requests_to("GET", PREFIX)
    assert first.bearer == second.bearer != third.bearer
    assert third.status == 200


async def test_a_revoked_token_is_replaced_once(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    control = CallControlClient(client)
    await control.get_session(TSID)
    sim.revoke_tokens()
    await control.get_session(TSID)
    statuses = [r.status for r in sim.requests_to("GET", PREFIX)]
    assert statuses == [200, 401, 200]
    assert len(sim.token_requests) == 2


async def test_refused_credentials_raise_auth_error_without_retry(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.fail_token(times=5, status=401)
    with pytest.raises(RingCentralAuthError) as info:
        await CallControlClient(client).hangup(TSID, PARTY)
    assert (info.value.status, info.value.error) == (401, "invalid_client")
    assert len(sim.token_requests) == 1
    assert api_requests(sim) == []


async def test_wrong_jwt_is_invalid_grant(sim: RingCentralSimulator, clock: Clock) -> None:
    async with RingCentralClient(credentials(sim, jwt="not-the-jwt"), retry=NO_WAIT) as rc:
        with pytest.raises(RingCentralAuthError) as info:
            await CallControlClient(rc).get_session(TSID)
    assert (info.value.status, info.value.error) == (400, "invalid_grant")


async def test_wrong_client_secret_is_invalid_client(sim: RingCentralSimulator) -> None:
    async with RingCentralClient(credentials(sim, client_secret="nope"), retry=NO_WAIT) as rc:
        with pytest.raises(RingCentralAuthError) as info:
            await CallControlClient(rc).get_session(TSID)
    assert info.value.error == "invalid_client"


async def test_token_endpoint_outage_is_retried(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    sim.fail_token(times=2, status=503)
    await CallControlClient(client).get_session(TSID)
    assert [r.status for r in sim.token_requests] == [503, 503, 200]


# ------------------------------------------------------------------ retries


async def test_503_is_retried_until_it_succeeds(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    sim.fail_api(times=2, status=503)
    await CallControlClient(client).transfer(TSID, PARTY, CallTarget(extension_number="104"))
    assert [r.status for r in sim.requests_to("POST", "/transfer")] == [503, 503, 200]


async def test_503_beyond_the_attempts_is_raised(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    sim.fail_api(times=10, status=503)
    with pytest.raises(RingCentralApiError) as info:
        await CallControlClient(client).hangup(TSID, PARTY)
    assert info.value.status == 503
    assert info.value.retryable
    assert len(api_requests(sim)) == NO_WAIT.attempts
    assert sim.party(TSID, PARTY).status == "Answered"


async def test_429_honours_retry_after(
    sim: RingCentralSimulator, client: RingCentralClient
) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    sim.fail_api(times=1, status=429, retry_after=0)
    await CallControlClient(client).hangup(TSID, PARTY)
    assert [r.status for r in sim.requests_to("DELETE", PARTY)] == [429, 204]


async def test_400_is_not_retried(sim: RingCentralSimulator, client: RingCentralClient) -> None:
    sim.add_session(TSID, PARTY, status="Answered")
    with pytest.raises(RingCentralApiError) as info:
        await client.request("POST", f"{PREFIX}/parties/{PARTY}/transfer", json_body={})
    assert (info.value.status, info.value.error_code) == (400, "CMN-101")
    assert len(api_requests(sim)) == 1


async def test_unreachable_server_is_a_connection_error(clock: Clock) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    creds = RingCentralCredentials(f"http://127.0.0.1:{port}", "id", "secret", "jwt")
    async with RingCentralClient(creds, retry=NO_WAIT, clock=clock) as rc:
        with pytest.raises(RingCentralConnectionError) as info:
            await CallControlClient(rc).hangup(TSID, PARTY)
    assert info.value.retryable
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_a_server_that_never_answers_times_out() -> None:
    handlers: list[asyncio.Task[None]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await reader.read()  # say nothing; returns when the client gives up and closes
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    creds = RingCentralCredentials(f"http://127.0.0.1:{port}", "id", "secret", "jwt")
    try:
        async with RingCentralClient(
            creds,
            retry=RetryPolicy(attempts=2, initial_wait_s=0.0),
            deadlines=aiohttp.ClientTimeout(total=0.2),
        ) as rc:
            with pytest.raises(RingCentralConnectionError, match="timed out"):
                await CallControlClient(rc).hangup(TSID, PARTY)
        await asyncio.gather(*handlers)
    finally:
        server.close()
        await server.wait_closed()
    assert len(handlers) == 2


# ------------------------------------------------------------------ configuration


def test_credentials_from_settings_name_every_missing_variable() -> None:
    with pytest.raises(RingCentralConfigError, match="RC_CLIENT_SECRET, RC_JWT_TOKEN"):
        RingCentralCredentials.from_settings(Settings(rc_client_id="id"))
    creds = RingCentralCredentials.from_settings(
        Settings(
            rc_server_url="https://rc.example/",
            rc_client_id="id",
            rc_client_secret="s3cret",
            rc_jwt_token="jwt-value",
        )
    )
    assert creds.server_url == "https://rc.example"
    assert "s3cret" not in repr(creds) and "jwt-value" not in repr(creds)


async def test_a_closed_client_refuses_requests(sim: RingCentralSimulator) -> None:
    rc = RingCentralClient(credentials(sim))
    await rc.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await rc.request("GET", PREFIX)


def test_call_target_needs_exactly_one_field() -> None:
    with pytest.raises(ValueError):
        CallTarget()
    with pytest.raises(ValueError):
        CallTarget(phone_number="+1555", extension_number="104")
    with pytest.raises(ValueError):
        CallTarget(extension_number=" ")
