"""REGISTER as RingCentral's SDK shapes it, answered by a registrar built on our DigestServer."""

from __future__ import annotations

import pytest

from realtime_voice.sip.auth import DigestServer, Verdict
from realtime_voice.sip.dialog import LocalContact
from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import build_response, parse_datagram
from realtime_voice.sip.registration import (
    Registration,
    RegistrationState,
    SipAccount,
)

ACCOUNT = SipAccount(domain="sip.ringcentral.com", username="16505550100", password="s3cret",
                     authorization_id="802398765", proxy_host="sip10.ringcentral.com",
                     proxy_port=5096)
LOCAL = LocalContact("10.0.0.5", 50123, "TLS", "16505550100", "urn:uuid:1234")


class Registrar:
    """A registrar: challenges, verifies with DigestServer, and records every request."""

    def __init__(self, *, qop: tuple[str, ...] = (), algorithm: str = "MD5",
                 password: str = "s3cret", stale_once: bool = False, status: int | None = None,
                 expires: int | None = None) -> None:
        self.server = DigestServer("sip.ringcentral.com", algorithm=algorithm, qop=qop)
        self.password = password
        self.stale_once = stale_once
        self.status = status
        self.expires = expires
        self.requests: list[SipRequest] = []

    async def exchange(self, request: SipRequest) -> SipResponse:
        # Through the wire form and back: what we build must parse.
        parsed = parse_datagram(request.serialize())
        assert isinstance(parsed, SipRequest)
        self.requests.append(parsed)
        if self.status is not None:
            return build_response(parsed, self.status, to_tag="t")
        credentials = parsed.headers.get("Authorization")
        if credentials is None:
            return build_response(parsed, 401, to_tag="t",
                                  headers=[("WWW-Authenticate", self.server.challenge())])
        verdict = self.server.verify(credentials, method="REGISTER", username="802398765",
                                     password=self.password, uri=str(parsed.uri))
        if verdict is Verdict.OK and self.stale_once:
            self.stale_once = False
            verdict = Verdict.STALE
        if verdict is not Verdict.OK:
            return build_response(parsed, 401, to_tag="t", headers=[(
                "WWW-Authenticate", self.server.challenge(stale=verdict is Verdict.STALE))])
        contact = parsed.headers.get("Contact") or ""
        granted = self.expires if self.expires is not None else parsed.expires
        return build_response(parsed, 200, to_tag="t",
                              headers=[("Contact", f"{contact};expires={granted}")])


@pytest.mark.parametrize(("qop", "algorithm"), [((), "MD5"), (("auth",), "MD5"),
                                                (("auth",), "SHA-256"), ((), "SHA-256")])
async def test_registers_through_the_challenge(qop: tuple[str, ...], algorithm: str) -> None:
    registrar = Registrar(qop=qop, algorithm=algorithm)
    registration = Registration(ACCOUNT, instance_id="urn:uuid:1234")
    status = await registration.register(registrar.exchange, LOCAL)
    assert status.state is RegistrationState.REGISTERED
    assert status.expires_s == 3600
    first, second = registrar.requests
    assert "Authorization" not in first.headers and "Authorization" in second.headers
    assert second.cseq.number == first.cseq.number + 1
    assert second.via[0].branch != first.via[0].branch
    assert first.call_id == second.call_id == registration.call_id


async def test_register_is_shaped_like_the_ringcentral_sdk() -> None:
    registrar = Registrar()
    await Registration(ACCOUNT, instance_id="urn:uuid:1234").register(registrar.exchange, LOCAL)
    request = registrar.requests[0]
    assert str(request.uri) == "sip:sip.ringcentral.com"
    contact = request.contacts[0]
    assert str(contact.uri) == "sip:16505550100@10.0.0.5:50123;transport=TLS;ob"
    assert contact.params["reg-id"] == "1"
    assert contact.params["+sip.instance"] == '"<urn:uuid:1234>"'
    via = request.via[0]
    assert via.transport == "TLS" and "rport" in via.params and "alias" in via.params
    assert str(request.to.uri) == str(request.from_.uri) == "sip:16505550100@sip.ringcentral.com"
    assert request.expires == 3600


async def test_a_refresh_reuses_the_challenge_and_counts_the_nonce() -> None:
    registrar = Registrar(qop=("auth",))
    registration = Registration(ACCOUNT, instance_id="urn:uuid:1234")
    await registration.register(registrar.exchange, LOCAL)
    status = await registration.register(registrar.exchange, LOCAL)
    assert status.state is RegistrationState.REGISTERED
    assert len(registrar.requests) == 3  # the refresh answered the cached challenge at once
    assert "nc=00000002" in (registrar.requests[2].headers.get("Authorization") or "")


async def test_a_stale_nonce_is_retried_without_counting_as_refusal() -> None:
    registrar = Registrar(stale_once=True)
    status = await Registration(ACCOUNT, instance_id="u").register(registrar.exchange, LOCAL)
    assert status.state is RegistrationState.REGISTERED
    assert len(registrar.requests) == 3


async def test_a_wrong_password_is_refused_after_one_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registrar = Registrar(password="other")
    status = await Registration(ACCOUNT, instance_id="u").register(registrar.exchange, LOCAL)
    assert status.state is RegistrationState.REFUSED
    assert status.status == 401
    assert "RC_SIP_PASSWORD" in status.detail
    assert len(registrar.requests) == 2  # never a loop
    assert "refused" in caplog.text


async def test_forbidden_is_refused_and_server_errors_are_transient() -> None:
    status = await Registration(ACCOUNT, instance_id="u").register(
        Registrar(status=403).exchange, LOCAL)
    assert status.state is RegistrationState.REFUSED
    status = await Registration(ACCOUNT, instance_id="u").register(
        Registrar(status=503).exchange, LOCAL)
    assert status.state is RegistrationState.FAILING and status.status == 503


async def test_the_granted_lifetime_sets_the_refresh() -> None:
    registration = Registration(ACCOUNT, instance_id="u", refresh_interval_s=30)
    status = await registration.register(Registrar(expires=20).exchange, LOCAL)
    assert status.expires_s == 20
    assert registration.refresh_delay() == 10  # halfway through a short grant
    await registration.register(Registrar(expires=3600).exchange, LOCAL)
    assert registration.refresh_delay() == 30  # RingCentral's SDK cadence


async def test_interval_too_brief_is_retried_with_min_expires() -> None:
    calls: list[SipRequest] = []

    async def exchange(request: SipRequest) -> SipResponse:
        calls.append(request)
        if request.expires != 7200:
            return build_response(request, 423, to_tag="t", headers=[("Min-Expires", "7200")])
        return build_response(request, 200, to_tag="t")

    status = await Registration(ACCOUNT, instance_id="u").register(exchange, LOCAL)
    assert status.state is RegistrationState.REGISTERED and status.expires_s == 7200
    assert len(calls) == 2


def test_the_password_stays_out_of_repr() -> None:
    assert "s3cret" not in repr(ACCOUNT)
