"""One SIP call's signalling: answering an INVITE, the dialog's offer/answer state, and
everything either side asks of it afterwards.

`IncomingCall` is an INVITE waiting for a decision; `IncomingCall.answer` sends the 200
(our answer, or our offer when the INVITE came without SDP: RingCentral's call queues
send such delayed offers, docs/RINGCENTRAL_SIP.md §3) and waits for the ACK, whose body
is then the answer. The `SipCall` it returns then handles the peer's in-dialog requests:
re-INVITE and UPDATE (hold, unhold, session refresh, a new ``a=crypto``: a rekey; each
reported to the media side as `MediaUpdate`), BYE, INFO, MESSAGE, OPTIONS and the NOTIFYs
of our own REFER; and it sends ours: BYE (`hang_up`) and REFER (`transfer`).

The SIP user agent (`realtime_voice.sip.ua`) routes requests here and supplies the flow
(`CallFlow`), which it may swap for a new connection after a reconnect: in-dialog
requests then go out on the new flow, as RFC 5626 intends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Protocol

from realtime_voice.sip import sdp as sdp_text
from realtime_voice.sip.dialog import Dialog, DialogError, LocalContact
from realtime_voice.sip.headers import SipRequest, SipResponse
from realtime_voice.sip.message import build_response
from realtime_voice.sip.registration import ALLOW, USER_AGENT
from realtime_voice.sip.sdp_model import SdpError, SessionDescription
from realtime_voice.sip.sdp_negotiation import (
    DEFAULT_CODECS,
    Answer,
    Codec,
    MediaChanges,
    NegotiatedMedia,
    answer,
    apply_answer,
    compare,
    offer,
    reanswer,
)
from realtime_voice.sip.transaction import InviteServerTransaction, ServerTransaction
from realtime_voice.sip.uri import SipParseError, SipUri

__all__ = [
    "CallEnded",
    "CallFlow",
    "IncomingCall",
    "MediaUpdate",
    "SipCall",
    "TransferOutcome",
    "is_auto_answer",
]

log = logging.getLogger(__name__)

_SUPPORTED = "replaces, timer, norefersub"
_BYE_TIMEOUT_S = 5.0
_SESSION_EXPIRES_S = 14400  # what RingCentral's SDK grants, refresher=uac


class CallEnded(Exception):
    """The call ended before it could be answered (CANCEL, no ACK, no common codec)."""


class CallFlow(Protocol):
    """The connection a call's signalling goes over (the user agent's flow)."""

    @property
    def local(self) -> LocalContact:
        """Our side of the flow, as Via and Contact write it."""
        ...

    def send(self, message: SipRequest | SipResponse) -> None:
        """Send a message outside any transaction (an ACK for a 2xx)."""
        ...

    async def exchange(self, request: SipRequest) -> SipResponse:
        """Send a request; its final response (raises on timeout or a lost flow)."""
        ...


@dataclass(frozen=True, slots=True)
class MediaUpdate:
    """A re-INVITE or UPDATE agreed new media: the RTP side applies ``changes``."""

    media: NegotiatedMedia
    changes: MediaChanges


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """How a REFER went: the sipfrag status of the transferee's call, or why not.

    Attributes:
        accepted: the REFER itself was accepted (202).
        status: the final status the NOTIFYs reported (200: transferred), or None.
        detail: a line for the log and the call record.
    """

    accepted: bool
    status: int | None
    detail: str

    @property
    def succeeded(self) -> bool:
        """Whether the transfer target answered."""
        return self.status is not None and 200 <= self.status < 300


def is_auto_answer(invite: SipRequest) -> bool:
    """Whether an INVITE carries RingCentral's auto-answer hint (REST "answer" flow)."""
    alert = " ".join(invite.headers.values("Alert-Info")).lower()
    info = " ".join(invite.headers.values("Call-Info")).lower()
    return "auto answer" in alert or "answer-after=0" in info.replace(" ", "")


def _session_timer_headers(request: SipRequest) -> list[tuple[str, str]]:
    """Session-Expires for our 2xx (RFC 4028): echo the peer's interval, it refreshes."""
    value = request.headers.get("Session-Expires")
    if value is None:
        return []
    interval = value.split(";", 1)[0].strip()
    seconds = interval if interval.isdigit() else str(_SESSION_EXPIRES_S)
    return [("Session-Expires", f"{seconds};refresher=uac"), ("Require", "timer")]


def _parse_body(request: SipRequest) -> SessionDescription | None:
    """The SDP of a request, None when it has none.

    Raises:
        SdpError: a body that is not SDP we can read.
    """
    if not request.body.strip():
        return None
    content_type = (request.headers.get("Content-Type") or "application/sdp").lower()
    if not content_type.startswith("application/sdp"):
        raise SdpError(f"unsupported body type {content_type[:40]!r}")
    return sdp_text.parse(request.body)


class IncomingCall:
    """An INVITE that opens a new dialog, waiting for `answer` or `reject`.

    Args:
        transaction: its server transaction (100 Trying already sent).
        flow: the flow it came on.
        on_established: told when the call is answered (the UA starts routing to it).
    """

    def __init__(self, transaction: InviteServerTransaction, flow: CallFlow,
                 on_established: Callable[[SipCall], None]) -> None:
        self.transaction = transaction
        self.invite = transaction.request
        self.flow = flow
        self._on_established = on_established
        self.dialog = Dialog.from_uas(transaction.request)
        self.offer = _parse_body(transaction.request)  # the UA answered 400/488 if it failed

    @property
    def call_id(self) -> str:
        """The SIP Call-ID (RingCentral's telephony webhooks carry it as sipData.callId)."""
        return self.dialog.call_id

    @property
    def caller(self) -> str:
        """Who is calling: the From user part (a number) or the whole URI."""
        uri = self.invite.from_.uri
        return (uri.user or str(uri)) if isinstance(uri, SipUri) else str(uri)

    @property
    def callee(self) -> str:
        """Who was called: the To user part, or the whole URI."""
        uri = self.invite.to.uri
        return (uri.user or str(uri)) if isinstance(uri, SipUri) else str(uri)

    @property
    def auto_answer(self) -> bool:
        """Whether RingCentral asked us to answer at once."""
        return is_auto_answer(self.invite)

    @property
    def cancelled(self) -> bool:
        """Whether the caller gave up (CANCEL) before we answered."""
        return self.transaction.cancelled.is_set()

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse the call (486 Busy Here, 603 Decline, 480, 503...)."""
        if not self.transaction.answered:
            self.transaction.respond(build_response(
                self.invite, status, reason, to_tag=self.dialog.local_tag,
                headers=[("User-Agent", USER_AGENT)]))

    async def answer(
        self,
        *,
        address: str,
        port: int,
        key: bytes,
        codecs: Sequence[Codec] = DEFAULT_CODECS,
        allow_plain_rtp: bool = False,
    ) -> SipCall:
        """Send the 200 OK with our SDP and wait for the ACK.

        Args:
            address: our RTP address (written in ``c=``).
            port: our RTP port (the socket is already bound).
            key: our fresh SRTP key for this call.
            codecs: what we run, most preferred first.
            allow_plain_rtp: accept ``RTP/AVP`` (SIPp tests; RingCentral always uses SRTP).

        Raises:
            CallEnded: cancelled before the 200, no acceptable media (488 sent), or no
                ACK within 32 s (a BYE is sent then).
        """
        if self.cancelled:
            raise CallEnded("the caller cancelled")
        local = self.flow.local
        if self.offer is not None:
            try:
                ours = answer(self.offer, address=address, port=port, key=key, codecs=codecs,
                              allow_plain_rtp=allow_plain_rtp)
            except SdpError as exc:
                self.reject(488, "Not Acceptable Here")
                raise CallEnded(f"no acceptable media: {exc}") from exc
            our_sdp, media = ours.sdp, ours.media
        else:
            our_sdp = offer(address=address, port=port, key=key, codecs=codecs,
                            srtp=not allow_plain_rtp)
            media = None
        # RFC 3261 §12.1.1: the 2xx carries the request's Record-Route set back.
        headers = [*(("Record-Route", route) for route in self.invite.headers.values(
                       "Record-Route")),
                   ("Contact", local.contact()), ("Allow", ALLOW), ("Supported", _SUPPORTED),
                   ("User-Agent", USER_AGENT), *_session_timer_headers(self.invite),
                   ("Content-Type", "application/sdp")]
        call = SipCall(self.dialog, self.flow, self.invite, our_sdp, media, codecs=codecs,
                       address=address, port=port, allow_plain_rtp=allow_plain_rtp)
        self.transaction.respond(build_response(
            self.invite, 200, "OK", to_tag=self.dialog.local_tag, headers=headers,
            body=sdp_text.serialize(our_sdp).encode()))
        # Routed from now on: a BYE may follow the ACK in the same read, before we resume.
        self._on_established(call)
        ack = await self.transaction.wait_ack()
        if ack is None:
            await call.hang_up("no ACK")
            raise CallEnded("no ACK to our 200 within 32 s")
        if media is None:  # delayed offer: the ACK carries the answer
            try:
                remote = _parse_body(ack)
                if remote is None:
                    raise SdpError("the ACK carries no answer to our offer")
                call.media = apply_answer(our_sdp, remote, codecs=codecs)
            except SdpError as exc:
                await call.hang_up("bad answer in ACK")
                raise CallEnded(f"unusable answer in the ACK: {exc}") from exc
        return call


class SipCall:
    """An established call's dialog and offer/answer state.

    Set `on_media` to hear media changes and `on_ended` to hear the far end hang up.
    """

    def __init__(self, dialog: Dialog, flow: CallFlow, invite: SipRequest,
                 local_sdp: SessionDescription, media: NegotiatedMedia | None, *,
                 codecs: Sequence[Codec], address: str, port: int,
                 allow_plain_rtp: bool) -> None:
        self.dialog = dialog
        self.flow = flow
        self.invite = invite
        self.local_sdp = local_sdp
        self.media: NegotiatedMedia | None = media
        self._codecs = tuple(codecs)
        self._address = address
        self._port = port
        self._allow_plain = allow_plain_rtp
        self.on_media: Callable[[MediaUpdate], None] | None = None
        self.on_ended: Callable[[str], None] | None = None
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._refer: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self.dialog.call_id

    # -- the peer's requests --------------------------------------------------------

    def handle(self, transaction: ServerTransaction | InviteServerTransaction) -> None:
        """Answer one in-dialog request from the peer."""
        request = transaction.request
        try:
            self.dialog.accept_remote_cseq(request)
        except (DialogError, SipParseError) as exc:
            transaction.respond(build_response(request, 500, "Server Internal Error",
                                               headers=[("Warning", f'399 - "{exc}"')]))
            return
        method = request.method
        if method == "BYE":
            transaction.respond(build_response(request, 200, "OK"))
            self._end("remote_bye")
        elif method == "INVITE" and isinstance(transaction, InviteServerTransaction):
            self._spawn(self._reinvite(transaction))
        elif method == "UPDATE":
            self._update(transaction)
        elif method == "NOTIFY":
            self._notify(transaction)
        elif method in ("INFO", "MESSAGE", "OPTIONS"):
            # RingCentral sends proprietary INFO/MESSAGE bodies; a 200 is all it needs.
            transaction.respond(build_response(request, 200, "OK", headers=[("Allow", ALLOW)]))
        elif method == "REFER":
            transaction.respond(build_response(request, 603, "Decline"))
        else:
            transaction.respond(build_response(request, 405, "Method Not Allowed",
                                               headers=[("Allow", ALLOW)]))

    def _reanswer(self, remote: SessionDescription) -> tuple[Answer, MediaChanges]:
        if self.media is None:
            raise SdpError("no media agreed yet")
        return reanswer(Answer(self.local_sdp, self.media), remote, address=self._address,
                        port=self._port, codecs=self._codecs,
                        allow_plain_rtp=self._allow_plain)

    def _apply(self, media: NegotiatedMedia, changes: MediaChanges) -> None:
        self.media = media
        if changes.any and self.on_media is not None:
            try:
                self.on_media(MediaUpdate(media, changes))
            except Exception:  # the media side's bug must not break the dialog
                log.exception("call %s: media update failed", self.call_id)

    async def _reinvite(self, transaction: InviteServerTransaction) -> None:
        request = transaction.request
        self.dialog.update_target(request)
        headers = [("Contact", self.flow.local.contact()), ("Allow", ALLOW),
                   ("Supported", _SUPPORTED), *_session_timer_headers(request),
                   ("Content-Type", "application/sdp")]
        try:
            remote = _parse_body(request)
            if remote is not None:
                result, changes = self._reanswer(remote)
                body_sdp = result.sdp
            else:  # no offer: ours goes in the 200, the answer comes in the ACK
                body_sdp, result, changes = self.local_sdp, None, None
        except SdpError as exc:
            transaction.respond(build_response(request, 488, "Not Acceptable Here",
                                               headers=[("Warning", f'399 - "{exc}"')]))
            return
        transaction.respond(build_response(request, 200, "OK", headers=headers,
                                           body=sdp_text.serialize(body_sdp).encode()))
        self.local_sdp = body_sdp
        if result is not None and changes is not None:
            self._apply(result.media, changes)
        ack = await transaction.wait_ack()
        if ack is None:
            log.warning("call %s: no ACK to our re-INVITE 200; ending", self.call_id)
            await self.hang_up("no ACK")
            return
        if result is None:
            try:
                remote = _parse_body(ack)
                if remote is not None and self.media is not None:
                    media = apply_answer(self.local_sdp, remote, codecs=self._codecs)
                    self._apply(media, compare(self.media, media))
            except SdpError as exc:
                log.warning("call %s: unusable answer in ACK: %s", self.call_id, exc)

    def _update(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        self.dialog.update_target(request)
        headers = [("Contact", self.flow.local.contact()), *_session_timer_headers(request)]
        try:
            remote = _parse_body(request)
            if remote is None:  # a session refresh
                transaction.respond(build_response(request, 200, "OK", headers=headers))
                return
            result, changes = self._reanswer(remote)
        except SdpError as exc:
            transaction.respond(build_response(request, 488, "Not Acceptable Here",
                                               headers=[("Warning", f'399 - "{exc}"')]))
            return
        transaction.respond(build_response(
            request, 200, "OK", headers=[*headers, ("Content-Type", "application/sdp")],
            body=sdp_text.serialize(result.sdp).encode()))
        self.local_sdp = result.sdp
        self._apply(result.media, changes)

    def _notify(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        transaction.respond(build_response(request, 200, "OK"))
        event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if event != "refer" or self._refer is None or self._refer.done():
            return
        status = _sipfrag_status(request.body)
        state = (request.headers.get("Subscription-State") or "").lower()
        if status is not None and status >= 200:
            self._refer.set_result(status)
        elif state.startswith("terminated"):
            self._refer.set_result(status or 0)

    # -- our requests ---------------------------------------------------------------

    async def hang_up(self, reason: str = "hangup") -> None:
        """Send BYE (bounded wait for its answer) and end the call. Idempotent."""
        if self.ended.is_set():
            return
        self._end(reason)
        bye = self.dialog.request("BYE", self.flow.local,
                                  headers=[("User-Agent", USER_AGENT)])
        try:
            await asyncio.wait_for(self.flow.exchange(bye), _BYE_TIMEOUT_S)
        except Exception as exc:  # the call is over for us either way
            log.info("call %s: BYE not answered: %s", self.call_id, exc)

    async def transfer(self, target: str, *, timeout_s: float = 15.0) -> TransferOutcome:
        """Blind transfer by REFER (RFC 3515): waits for the NOTIFY with the final status.

        Args:
            target: the SIP URI to transfer to (``sip:+15551230000@sip.ringcentral.com``).
            timeout_s: how long to wait for the outcome.
        """
        loop = asyncio.get_running_loop()
        self._refer = loop.create_future()
        local = self.flow.local
        refer = self.dialog.request("REFER", local, headers=[
            ("Refer-To", f"<{target}>"),
            ("Referred-By", f"<{self.dialog.local_uri}>"),
            ("Accept", "message/sipfrag;version=2.0"),
            ("User-Agent", USER_AGENT),
        ])
        try:
            response = await asyncio.wait_for(self.flow.exchange(refer), timeout_s)
        except Exception as exc:
            return TransferOutcome(False, None, f"REFER failed: {exc}")
        if not 200 <= response.status < 300:
            return TransferOutcome(False, response.status,
                                   f"REFER refused: {response.status} {response.reason}")
        try:
            status = await asyncio.wait_for(asyncio.shield(self._refer), timeout_s)
        except TimeoutError:
            return TransferOutcome(True, None, "REFER accepted; no final NOTIFY in time")
        return TransferOutcome(True, status, f"transfer target answered {status}")

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        if self._refer is not None and not self._refer.done():
            self._refer.cancel()
        if self.on_ended is not None:
            try:
                self.on_ended(reason)
            except Exception:
                log.exception("call %s: on_ended failed", self.call_id)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop background work (a re-INVITE waiting for its ACK)."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _sipfrag_status(body: bytes) -> int | None:
    """The status code of a ``message/sipfrag`` body (``SIP/2.0 200 OK``)."""
    line = body.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
    parts = line.split()
    if len(parts) >= 2 and parts[0].upper().startswith("SIP/") and parts[1].isdigit():
        return int(parts[1])
    return None
