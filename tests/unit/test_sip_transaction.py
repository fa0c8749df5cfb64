"""Two transaction layers wired back to back in memory, T1 = 5 ms: RFC 3261 §17 behaviour."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from realtime_voice.sip.headers import Headers, SipMessage, SipRequest, SipResponse
from realtime_voice.sip.message import build_response, new_branch, parse_datagram
from realtime_voice.sip.transaction import (
    InviteServerTransaction,
    ServerTransaction,
    TransactionLayer,
    TransactionTimeout,
)
from realtime_voice.sip.transport import FlowClosed
from realtime_voice.sip.uri import parse_uri

T1 = 0.005
T2 = 0.02
TIMEOUT = 5.0
AnyServer = ServerTransaction | InviteServerTransaction


def make_request(method: str, *, branch: str | None = None, cseq: int = 1,
                 call_id: str = "call-1", cseq_method: str | None = None,
                 to_tag: str | None = None, via: str | None = None) -> SipRequest:
    to = "<sip:bot@10.0.0.5>" + (f";tag={to_tag}" if to_tag else "")
    headers = Headers([
        ("Via", via or f"SIP/2.0/TLS 10.0.0.1:5061;branch={branch or new_branch()}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:+15551230000@sip.ringcentral.com>;tag=caller"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {cseq_method or method}"),
    ])
    return SipRequest(method, parse_uri("sip:bot@10.0.0.5"), headers=headers)


def cancel_of(invite: SipRequest) -> SipRequest:
    """A CANCEL for ``invite`` (RFC 3261 §9.1: same Via, Call-ID, From, To, CSeq number)."""
    headers = Headers([(name, value) for name, value in invite.headers
                       if name in ("Via", "From", "To", "Call-ID")])
    headers.add("CSeq", f"{invite.cseq.number} CANCEL")
    return SipRequest("CANCEL", invite.uri, headers=headers)


def ack_of_2xx(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The dialog's ACK of a 2xx: a new branch, the response's To (with tag)."""
    return make_request("ACK", cseq=invite.cseq.number, call_id=invite.call_id,
                        to_tag=response.to.tag)


class Side:
    """One layer, with everything it sent and every server transaction it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[SipMessage] = []
        self.peer: Side | None = None
        self.requests: list[AnyServer] = []
        self.new_request = asyncio.Event()
        self.strays: list[SipResponse] = []
        self.handler: Callable[[AnyServer], None] | None = None
        self.layer = TransactionLayer(self._send, on_request=self._on_request,
                                      on_stray_response=self.strays.append, t1_s=T1, t2_s=T2)

    def _send(self, message: SipMessage) -> None:
        # Through the wire form: what the layer builds must parse.
        self.sent.append(message)
        parsed = parse_datagram(message.serialize())
        assert parsed is not None
        if self.peer is not None:
            asyncio.get_running_loop().call_soon(self.peer.layer.on_message, parsed)

    def _on_request(self, transaction: AnyServer) -> None:
        self.requests.append(transaction)
        self.new_request.set()
        if self.handler is not None:
            self.handler(transaction)

    async def next_request(self) -> AnyServer:
        async def wait() -> AnyServer:
            while not self.requests:
                self.new_request.clear()
                await self.new_request.wait()
            return self.requests.pop(0)
        return await asyncio.wait_for(wait(), TIMEOUT)

    def statuses(self) -> list[int]:
        return [m.status for m in self.sent if isinstance(m, SipResponse)]

    def methods(self) -> list[str]:
        return [m.method for m in self.sent if isinstance(m, SipRequest)]


@pytest.fixture
def pair() -> tuple[Side, Side]:
    """(uac, uas): requests made on the first are received by the second."""
    uac, uas = Side("uac"), Side("uas")
    uac.peer, uas.peer = uas, uac
    return uac, uas


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for what the layers' timers make true."""
    async def poll() -> None:
        # Timers inside the layer have no event to wait on; poll at T1 granularity.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(T1)
    await asyncio.wait_for(poll(), TIMEOUT)


# -- client transactions ------------------------------------------------------------------

async def test_request_resolves_with_its_final_response(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    pending = asyncio.ensure_future(uac.layer.request(make_request("OPTIONS")))
    txn = await uas.next_request()
    assert isinstance(txn, ServerTransaction) and not isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(txn.request, 200, to_tag="uas"))
    response = await asyncio.wait_for(pending, TIMEOUT)
    assert response.status == 200 and response.cseq.method == "OPTIONS"
    assert uac.strays == []


async def test_responses_are_matched_by_branch_and_method(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    first = asyncio.ensure_future(uac.layer.request(make_request("OPTIONS", call_id="a")))
    second = asyncio.ensure_future(uac.layer.request(make_request("INFO", call_id="b")))
    one, two = await uas.next_request(), await uas.next_request()
    two.respond(build_response(two.request, 202, to_tag="x"))
    one.respond(build_response(one.request, 404, to_tag="y"))
    assert (await asyncio.wait_for(first, TIMEOUT)).status == 404
    assert (await asyncio.wait_for(second, TIMEOUT)).status == 202


async def test_provisional_responses_reach_the_callback(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    provisional: list[int] = []
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(
        invite, on_provisional=lambda r: provisional.append(r.status)))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(invite, 180, to_tag="uas"))
    txn.respond(build_response(invite, 200, to_tag="uas"))
    assert (await asyncio.wait_for(pending, TIMEOUT)).status == 200
    assert provisional == [100, 180]  # the 100 Trying came from the layer itself


async def test_no_final_response_times_out(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TransactionTimeout, match="OPTIONS"):
        await uac.layer.request(make_request("OPTIONS"))
    assert loop.time() - start >= 64 * T1 * 0.9
    assert len(uas.requests) == 1  # received, never answered
    with pytest.raises(TransactionTimeout):
        await uac.layer.request(make_request("OPTIONS"), timeout_s=0.02)
    assert uac.layer.pending_requests == 0


async def test_non_2xx_to_invite_is_acked_by_the_layer(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(invite, 486, to_tag="busy"))
    response = await asyncio.wait_for(pending, TIMEOUT)
    assert response.status == 486
    [ack] = [m for m in uac.sent if isinstance(m, SipRequest) and m.method == "ACK"]
    assert ack.via[0].branch == invite.via[0].branch  # §17.1.1.3: same branch
    assert ack.cseq.number == 1 and ack.cseq.method == "ACK"
    assert ack.to.tag == "busy" and str(ack.uri) == str(invite.uri)
    assert await asyncio.wait_for(txn.wait_ack(), TIMEOUT) is None  # absorbed
    assert len(uas.requests) == 0  # the ACK never reached on_request


async def test_close_fails_pending_requests(pair: tuple[Side, Side]) -> None:
    uac, _ = pair
    pending = asyncio.ensure_future(uac.layer.request(make_request("OPTIONS")))
    await asyncio.sleep(0)  # let it send
    uac.layer.close("connection lost")
    with pytest.raises(FlowClosed, match="connection lost"):
        await asyncio.wait_for(pending, TIMEOUT)
    with pytest.raises(FlowClosed):
        await uac.layer.request(make_request("OPTIONS"))


async def test_retransmitted_2xx_goes_to_on_stray_response(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    txn.respond(build_response(invite, 200, to_tag="uas"))
    await asyncio.wait_for(pending, TIMEOUT)
    # No ACK yet: the UAS resends the 2xx; the dialog (stray handler) gets each copy.
    await until(lambda: len(uac.strays) >= 2)
    assert all(r.status == 200 for r in uac.strays)


# -- INVITE server transactions -------------------------------------------------------------

async def test_2xx_is_retransmitted_until_the_ack(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(invite, 200, to_tag="uas", body=b"v=0\r\n"))
    response = await asyncio.wait_for(pending, TIMEOUT)
    await until(lambda: uas.statuses().count(200) >= 3)
    uac.layer._send(ack_of_2xx(invite, response))  # the dialog's ACK: a new branch
    ack = await asyncio.wait_for(txn.wait_ack(), TIMEOUT)
    assert ack is not None and ack.method == "ACK"
    sent_at_ack = uas.statuses().count(200)
    # Wait until the transaction is forgotten (64*T1 after the 200): no more copies.
    await until(lambda: uas.layer.server_transactions == 0)
    assert uas.statuses().count(200) == sent_at_ack
    assert uas.statuses()[0] == 100 and len(uas.requests) == 0


async def test_retransmission_intervals_double_up_to_t2() -> None:
    times: list[float] = []
    loop = asyncio.get_running_loop()

    def record(message: SipMessage) -> None:
        if isinstance(message, SipResponse) and message.status == 200:
            times.append(loop.time())

    got: list[AnyServer] = []
    layer = TransactionLayer(record, on_request=got.append, t1_s=T1, t2_s=T2)
    layer.on_message(make_request("INVITE"))
    [txn] = got
    txn.respond(build_response(txn.request, 200, to_tag="uas"))
    assert isinstance(txn, InviteServerTransaction)
    assert await asyncio.wait_for(txn.wait_ack(), TIMEOUT) is None  # no ACK in 64*T1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 5
    assert gaps[0] >= T1 * 0.9 and gaps[1] >= 2 * T1 * 0.9
    assert txn._interval == T2  # the doubling stopped at T2 (wall-clock gaps vary)
    count = len(times)
    await until(lambda: layer.server_transactions == 0)
    assert len(times) == count  # gave up


async def test_wait_ack_is_none_after_64_t1(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    loop = asyncio.get_running_loop()
    txn.respond(build_response(invite, 200, to_tag="uas"))
    start = loop.time()
    await asyncio.wait_for(pending, TIMEOUT)
    assert await asyncio.wait_for(txn.wait_ack(), TIMEOUT) is None
    assert loop.time() - start >= 64 * T1 * 0.9
    assert txn.answered and not txn.cancelled.is_set()


async def test_cancel_before_the_answer(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(invite, 180, to_tag="ringing"))
    cancel_response = await uac.layer.request(cancel_of(invite))
    assert cancel_response.status == 200
    response = await asyncio.wait_for(pending, TIMEOUT)
    assert response.status == 487 and response.reason == "Request Terminated"
    assert response.to.tag == "ringing"  # the tag the dialog already used
    assert txn.cancelled.is_set() and txn.answered
    assert "ACK" in uac.methods()  # the layer ACKed the 487
    assert await asyncio.wait_for(txn.wait_ack(), TIMEOUT) is None
    assert uas.requests == []  # neither CANCEL nor ACK reached on_request
    txn.respond(build_response(invite, 200, to_tag="ringing"))  # too late: dropped
    assert uas.statuses().count(200) == 1  # only the CANCEL's


async def test_cancel_after_the_answer(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(invite, 200, to_tag="uas"))
    response = await asyncio.wait_for(pending, TIMEOUT)
    assert (await uac.layer.request(cancel_of(invite))).status == 200
    assert not txn.cancelled.is_set()
    assert 487 not in uas.statuses()
    uac.layer._send(ack_of_2xx(invite, response))
    assert await asyncio.wait_for(txn.wait_ack(), TIMEOUT) is not None


async def test_cancel_matching_nothing_gets_481(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    response = await uac.layer.request(cancel_of(make_request("INVITE")))
    assert response.status == 481
    assert uas.requests == []


async def test_invite_retransmission_is_absorbed() -> None:
    sent: list[SipMessage] = []
    got: list[AnyServer] = []
    layer = TransactionLayer(sent.append, on_request=got.append, t1_s=T1, t2_s=T2)
    invite = make_request("INVITE")
    layer.on_message(invite)
    layer.on_message(invite)  # before any final response: the 100 again
    assert len(got) == 1
    assert [m.status for m in sent if isinstance(m, SipResponse)] == [100, 100]
    got[0].respond(build_response(invite, 486, to_tag="busy"))
    layer.on_message(invite)  # after it: the 486 again
    assert len(got) == 1
    assert [m.status for m in sent if isinstance(m, SipResponse)] == [100, 100, 486, 486]


async def test_non_invite_retransmission_is_answered_again() -> None:
    sent: list[SipMessage] = []
    got: list[AnyServer] = []
    layer = TransactionLayer(sent.append, on_request=got.append, t1_s=T1, t2_s=T2)
    bye = make_request("BYE", to_tag="ours")
    layer.on_message(bye)
    layer.on_message(bye)  # not answered yet: absorbed silently
    assert len(got) == 1 and sent == []
    got[0].respond(build_response(bye, 200))
    layer.on_message(bye)
    layer.on_message(bye)
    assert len(got) == 1
    assert [m.status for m in sent if isinstance(m, SipResponse)] == [200, 200, 200]
    # Forgotten after 64*T1: the same branch is then a new transaction.
    await until(lambda: layer.server_transactions == 0)
    layer.on_message(bye)
    assert len(got) == 2


async def test_same_branch_different_method_is_a_different_transaction() -> None:
    got: list[AnyServer] = []
    layer = TransactionLayer(lambda m: None, on_request=got.append, t1_s=T1)
    branch = new_branch()
    layer.on_message(make_request("OPTIONS", branch=branch))
    layer.on_message(make_request("INFO", branch=branch))
    assert [t.request.method for t in got] == ["OPTIONS", "INFO"]


async def test_branch_without_magic_cookie_is_accepted() -> None:
    sent: list[SipMessage] = []
    got: list[AnyServer] = []
    layer = TransactionLayer(sent.append, on_request=got.append, t1_s=T1)
    old = make_request("OPTIONS", via="SIP/2.0/TCP 10.0.0.1:5060;branch=1234")
    bare = make_request("OPTIONS", via="SIP/2.0/TCP 10.0.0.1:5060", call_id="other")
    for request in (old, old, bare, bare):
        layer.on_message(request)
    assert [t.request.call_id for t in got] == ["call-1", "other"]
    for txn in got:
        txn.respond(build_response(txn.request, 200, to_tag="t"))
    layer.on_message(bare)
    assert [m.status for m in sent if isinstance(m, SipResponse)] == [200, 200, 200]
    # An RFC 2543 INVITE (no cookie), its CANCEL and its ACK match by Call-ID + CSeq.
    invite = make_request("INVITE", via="SIP/2.0/TCP 10.0.0.1:5060;branch=77", call_id="old")
    layer.on_message(invite)
    layer.on_message(cancel_of(invite))
    assert isinstance(got[-1], InviteServerTransaction) and got[-1].cancelled.is_set()


async def test_ack_matching_nothing_is_dropped() -> None:
    sent: list[SipMessage] = []
    got: list[AnyServer] = []
    layer = TransactionLayer(sent.append, on_request=got.append, t1_s=T1)
    layer.on_message(make_request("ACK", to_tag="x"))
    assert got == [] and sent == []


async def test_handler_exception_answers_500() -> None:
    sent: list[SipMessage] = []

    def broken(txn: AnyServer) -> None:
        raise RuntimeError("bug")

    layer = TransactionLayer(sent.append, on_request=broken, t1_s=T1)
    layer.on_message(make_request("OPTIONS"))
    assert [m.status for m in sent if isinstance(m, SipResponse)] == [500]


async def test_transaction_cap_answers_503() -> None:
    sent: list[SipMessage] = []
    got: list[AnyServer] = []
    layer = TransactionLayer(sent.append, on_request=got.append, t1_s=T1, max_transactions=2)
    for n in range(3):
        layer.on_message(make_request("OPTIONS", call_id=f"c{n}"))
    assert len(got) == 2
    [busy] = [m for m in sent if isinstance(m, SipResponse)]
    assert busy.status == 503 and busy.call_id == "c2"


async def test_a_send_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    got: list[AnyServer] = []

    def dead(message: SipMessage) -> None:
        raise FlowClosed("flow is closed: peer closed the connection")

    layer = TransactionLayer(dead, on_request=got.append, t1_s=T1)
    layer.on_message(make_request("OPTIONS"))  # must not raise
    got[0].respond(build_response(got[0].request, 200))
    assert "cannot send" in caplog.text
    with pytest.raises(FlowClosed):
        await layer.request(make_request("OPTIONS"))
    assert layer.pending_requests == 0


async def test_cancelled_caller_leaves_nothing_behind(pair: tuple[Side, Side]) -> None:
    uac, _ = pair
    pending = asyncio.ensure_future(uac.layer.request(make_request("OPTIONS")))
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert uac.layer.pending_requests == 0


async def test_close_resolves_wait_ack_and_stops_timers(pair: tuple[Side, Side]) -> None:
    uac, uas = pair
    invite = make_request("INVITE")
    pending = asyncio.ensure_future(uac.layer.request(invite))
    txn = await uas.next_request()
    assert isinstance(txn, InviteServerTransaction)
    txn.respond(build_response(invite, 200, to_tag="uas"))
    await asyncio.wait_for(pending, TIMEOUT)
    uas.layer.close("flow lost")
    assert await asyncio.wait_for(txn.wait_ack(), TIMEOUT) is None
    assert uas.layer.server_transactions == 0
