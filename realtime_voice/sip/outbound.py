"""Placing a call through the registered device: INVITE, the proxy's 407, early media,
and how it ended.

RingCentral's SDK shapes an outbound INVITE with a Route to the outbound proxy, answers
the 407 with the same digest as REGISTER, and expects a 183 with SDP (early media: the
ring-back or an announcement) before the 200 (docs/RINGCENTRAL_SIP.md §3). `dial` does
that and returns a `DialResult`: answered (with the established `SipCall`), busy, no
answer (the ring timeout ran out and we sent CANCEL, or the far end said so), or failed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from realtime_voice.sip import sdp as sdp_text
from realtime_voice.sip.auth import AuthError, DigestClient, choose_challenge
from realtime_voice.sip.call import CallFlow, SipCall
from realtime_voice.sip.dialog import Dialog, DialogError, LocalContact, via_value
from realtime_voice.sip.headers import Headers, SipRequest, SipResponse
from realtime_voice.sip.message import new_call_id, new_tag
from realtime_voice.sip.registration import ALLOW, USER_AGENT, SipAccount
from realtime_voice.sip.sdp_model import SdpError
from realtime_voice.sip.sdp_negotiation import (
    DEFAULT_CODECS,
    Codec,
    NegotiatedMedia,
    apply_answer,
    offer,
)
from realtime_voice.sip.transaction import TransactionTimeout
from realtime_voice.sip.uri import SipParseError, SipUri, parse_uri

__all__ = ["DialOutcome", "DialResult", "OutboundFlow", "dial", "outcome_of", "target_uri"]

log = logging.getLogger(__name__)


class DialOutcome(enum.StrEnum):
    """How an outbound call ended up (the call record's ``outcome`` for a failed dial)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


def outcome_of(status: int) -> DialOutcome:
    """The outcome a final status means."""
    if 200 <= status < 300:
        return DialOutcome.ANSWERED
    if status in (486, 600):
        return DialOutcome.BUSY
    if status in (408, 480, 487):
        return DialOutcome.NO_ANSWER
    return DialOutcome.FAILED


@dataclass(frozen=True)
class DialResult:
    """What `dial` returns.

    Attributes:
        outcome: answered, busy, no answer or failed.
        status: the final SIP status, or None when none came.
        detail: a line for the log and the record.
        call: the established call, when answered.
        call_id: the SIP Call-ID of the attempt.
        early_media: whether a 183 with SDP came before the answer.
    """

    outcome: DialOutcome
    status: int | None
    detail: str
    call: SipCall | None
    call_id: str
    early_media: bool = False


class OutboundFlow(CallFlow, Protocol):
    """A `CallFlow` whose requests can report provisional responses (the INVITE's)."""

    async def exchange_with_progress(
        self, request: SipRequest, on_provisional: Callable[[SipResponse], None],
    ) -> SipResponse:
        """Send a request; report each 1xx; return its final response."""
        ...


def target_uri(account: SipAccount, target: str) -> SipUri:
    """``+1555...`` or ``101`` becomes ``sip:<target>@<domain>``; a SIP URI stays.

    Raises:
        ValueError: a target that is neither.
    """
    if target.startswith(("sip:", "sips:")):
        parsed = parse_uri(target)
        if isinstance(parsed, SipUri):
            return parsed
    elif target and all(ch.isdigit() or ch in "+*#" for ch in target):
        return SipUri(host=account.domain, user=target)
    raise ValueError(f"not a phone number, extension or SIP URI: {target[:60]!r}")


def _invite(account: SipAccount, local: LocalContact, target: SipUri, *, call_id: str,
            from_tag: str, cseq: int, body: bytes,
            extra: Sequence[tuple[str, str]]) -> SipRequest:
    aor = account.aor
    fields = [
        ("Via", via_value(local)),
        ("Route", f"<sip:{account.proxy_host}:{account.proxy_port};transport=tls;lr>"),
        ("Max-Forwards", "70"),
        ("From", f"<{aor}>;tag={from_tag}"),
        ("To", f"<{target}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", local.contact()),
        ("Allow", ALLOW),
        ("Supported", "replaces, timer"),
        ("User-Agent", USER_AGENT),
        *extra,
        ("Content-Type", "application/sdp"),
    ]
    return SipRequest("INVITE", target, headers=Headers(fields), body=body)


def _cancel(invite: SipRequest) -> SipRequest:
    """CANCEL matching an INVITE: its Via (branch), Route, From, To, Call-ID and CSeq number."""
    fields = [("Via", invite.headers.values("Via")[0]),
              *(("Route", route) for route in invite.headers.values("Route")),
              ("Max-Forwards", "70"), ("From", invite.headers.get("From") or ""),
              ("To", invite.headers.get("To") or ""), ("Call-ID", invite.call_id),
              ("CSeq", f"{invite.cseq.number} CANCEL")]
    return SipRequest("CANCEL", invite.uri, headers=Headers(fields))


async def dial(
    flow: OutboundFlow,
    account: SipAccount,
    target: str,
    *,
    address: str,
    port: int,
    key: bytes,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    ring_timeout_s: float = 60.0,
    headers: Sequence[tuple[str, str]] = (),
    on_early_media: Callable[[NegotiatedMedia], None] | None = None,
    srtp: bool = True,
) -> DialResult:
    """Call ``target`` (a number, ``sip:`` URI, or extension) through the device.

    Args:
        flow: the registered flow.
        account: the device (From, Route, digest credentials).
        target: ``+15551230000``, ``101`` or ``sip:user@host``.
        address: our RTP address for the offer.
        port: our RTP port (bound already).
        key: our SRTP key for this call.
        codecs: what we offer, most preferred first.
        ring_timeout_s: how long it may ring before we CANCEL (no answer).
        headers: extra INVITE headers.
        on_early_media: told the media of a 183 with SDP (start sending/receiving).
        srtp: offer RTP/SAVP (always, towards RingCentral).
    """
    uri = target_uri(account, target)
    local = flow.local
    our_offer = offer(address=address, port=port, key=key, codecs=codecs, srtp=srtp)
    body = sdp_text.serialize(our_offer).encode()
    call_id, from_tag = new_call_id(), new_tag()
    digest = DigestClient(account.authorization_id, account.password)
    cseq = 1
    early: list[NegotiatedMedia] = []
    invite = _invite(account, local, uri, call_id=call_id, from_tag=from_tag, cseq=cseq,
                     body=body, extra=headers)

    def progress(response: SipResponse) -> None:
        if response.status == 100 or not response.body.strip() or early:
            return
        try:
            media = apply_answer(our_offer, sdp_text.parse(response.body), codecs=codecs)
        except SdpError as exc:
            log.warning("dial %s: unusable early SDP: %s", call_id, exc)
            return
        early.append(media)
        if on_early_media is not None:
            on_early_media(media)

    for _attempt in range(3):
        try:
            response = await _ring(flow, invite, progress, ring_timeout_s)
        except (TransactionTimeout, ConnectionError, OSError) as exc:
            return DialResult(DialOutcome.FAILED, None, f"no answer from the proxy: {exc}",
                              None, call_id, bool(early))
        if response.status in (401, 407) and _attempt < 2:
            header = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
            try:
                challenge = choose_challenge(response.headers.values(header), header)
            except AuthError as exc:
                return DialResult(DialOutcome.FAILED, response.status, str(exc), None, call_id)
            cseq += 1
            invite = _invite(account, local, uri, call_id=call_id, from_tag=from_tag, cseq=cseq,
                             body=body, extra=headers)
            name = "Proxy-Authorization" if response.status == 407 else "Authorization"
            invite.headers.add(name, digest.authorization(challenge, "INVITE", str(uri)))
            continue
        break
    outcome = outcome_of(response.status)
    detail = f"{response.status} {response.reason}"
    if outcome is not DialOutcome.ANSWERED:
        return DialResult(outcome, response.status, detail, None, call_id, bool(early))
    try:
        dialog = Dialog.from_uac(invite, response)
        answer_sdp = response.body if response.body.strip() else b""
        media = (apply_answer(our_offer, sdp_text.parse(answer_sdp), codecs=codecs)
                 if answer_sdp else (early[0] if early else None))
        if media is None:
            raise SdpError("the 200 carries no answer to our offer")
    except (DialogError, SdpError, SipParseError) as exc:
        # Answered but unusable: ACK it (it is a 2xx) and hang up at once.
        log.warning("dial %s: unusable 200: %s", call_id, exc)
        await _ack_and_bye(flow, invite, response)
        return DialResult(DialOutcome.FAILED, response.status, f"unusable answer: {exc}",
                          None, call_id, bool(early))
    flow.send(dialog.request("ACK", local, cseq=invite.cseq.number))
    call = SipCall(dialog, flow, invite, our_offer, media, codecs=codecs, address=address,
                   port=port, allow_plain_rtp=not srtp)
    return DialResult(DialOutcome.ANSWERED, response.status, detail, call, call_id,
                      bool(early))


async def _ring(flow: OutboundFlow, invite: SipRequest,
                progress: Callable[[SipResponse], None], ring_timeout_s: float) -> SipResponse:
    """The INVITE's final response; after ``ring_timeout_s`` a CANCEL, then its 487."""
    pending = asyncio.ensure_future(flow.exchange_with_progress(invite, progress))
    done, _ = await asyncio.wait({pending}, timeout=ring_timeout_s)
    if pending in done:
        return pending.result()
    try:
        await flow.exchange(_cancel(invite))
    except Exception as exc:  # the INVITE's own timeout still ends it
        log.info("dial %s: CANCEL failed: %s", invite.call_id, exc)
    return await pending


async def _ack_and_bye(flow: OutboundFlow, invite: SipRequest, response: SipResponse) -> None:
    try:
        dialog = Dialog.from_uac(invite, response)
    except (DialogError, SipParseError):
        return
    flow.send(dialog.request("ACK", flow.local, cseq=invite.cseq.number))
    try:
        await asyncio.wait_for(flow.exchange(dialog.request("BYE", flow.local)), 5.0)
    except Exception as exc:
        log.info("dial %s: BYE not answered: %s", invite.call_id, exc)
