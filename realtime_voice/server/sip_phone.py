"""`SipPhone`: the SIP front end. The registered RingCentral device (and, optionally, a
listening port for peers that call directly), each answered call a `SipLeg` and a
`CallSession`, exactly as a WebSocket call is.

RingCentral sends each inbound call as an INVITE over our registered TLS flow. We check
capacity first (486 Busy Here when full, 503 while draining, before any 200), bind the
call's UDP socket, answer with a fresh SRTP key, start the RTP stream on the shared frame
clock right after the ACK, and run the session. The call's id is the SIP Call-ID, which
RingCentral's telephony-session webhooks carry as ``sipData.callId``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from realtime_voice.config import Settings
from realtime_voice.legs.base import PlatformCallControl
from realtime_voice.legs.media_clock import MediaClock
from realtime_voice.legs.recording import TapSource, recorded
from realtime_voice.legs.sip import SipLeg
from realtime_voice.legs.sip_media import RtpStream
from realtime_voice.log import call_id_var, mask_phone, session_id_var
from realtime_voice.providers.base import SttError
from realtime_voice.ringcentral.devices import DeviceSipInfo
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.manager import AdmissionError, CallSessionManager
from realtime_voice.session.observer import SessionObserver
from realtime_voice.session.session import CallSession
from realtime_voice.sip.call import IncomingCall
from realtime_voice.sip.outbound import DialResult
from realtime_voice.sip.registration import RegistrationState, SipAccount
from realtime_voice.sip.sdp_negotiation import generate_key
from realtime_voice.sip.ua import SipUserAgent, UaSettings
from realtime_voice.storage.journal import CallJournal, RecordSink

__all__ = ["OutboundCall", "SipPhone", "sip_account", "sip_enabled", "sip_ssl_context"]

_TOTALLED = ("packets_sent", "packets_received", "packets_lost", "packets_late",
             "srtp_auth_failures", "srtp_replays", "srtp_malformed", "rtcp_ignored",
             "decode_errors", "frames_cleared", "dtmf_received", "dtmf_sent")
"""The per-stream counters the metrics add up across calls (`SipPhone.media_totals`)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboundCall:
    """What `SipPhone.dial` reports: the call's id and how the dial went.

    Attributes:
        call_id: the SIP Call-ID (the call record's id).
        outcome: ``answered``, ``busy``, ``no_answer`` or ``failed``.
        status: the final SIP status, if one came.
        detail: the status line or the error, in words.
    """

    call_id: str
    outcome: str
    status: int | None
    detail: str


def sip_account(settings: Settings) -> SipAccount | None:
    """The device credentials from ``RC_SIP_*``, or None when the SIP leg is off."""
    if not (settings.rc_sip_domain and settings.rc_sip_outbound_proxy
            and settings.rc_sip_username and settings.rc_sip_password):
        return None
    host, port = settings.rc_sip_outbound_proxy
    return SipAccount(
        domain=settings.rc_sip_domain, username=settings.rc_sip_username,
        password=settings.rc_sip_password,
        authorization_id=settings.rc_sip_authorization_id or settings.rc_sip_username,
        proxy_host=host, proxy_port=port)


def sip_enabled(settings: Settings) -> bool:
    """Whether the SIP leg runs: a device (credentials or a device id) or a listener."""
    return (sip_account(settings) is not None or settings.rc_sip_device_id is not None
            or settings.sip_listen is not None)


def sip_ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS to the outbound proxy, verified: ``RC_SIP_CA_FILE``, else the system CAs."""
    context = ssl.create_default_context(cafile=settings.rc_sip_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SipPhone:
    """Registers the device and runs a session for each call it answers.

    Args:
        settings: server settings (``RC_SIP_*``, ``VOICE_SIP_*``).
        manager: the process's call registry (capacity, drain).
        engines: shared providers and responder.
        records: where calls are recorded.
        observer: metrics.
        ua_settings: SIP timers (tests shorten them).
        ssl_context: overrides `sip_ssl_context` (tests trust their own CA).
    """

    def __init__(self, settings: Settings, manager: CallSessionManager, engines: SpeechEngines,
                 *, records: RecordSink | None = None, observer: SessionObserver | None = None,
                 ua_settings: UaSettings | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.manager = manager
        self.engines = engines
        self.records = records
        self.observer = observer
        self.account = sip_account(settings)
        context = ssl_context
        if context is None and self.account is not None:
            context = sip_ssl_context(settings)
        self.clock = MediaClock()
        self._ssl_override = ssl_context
        self._ua_settings = ua_settings or UaSettings(max_calls=settings.max_calls)
        self.ua = SipUserAgent(self.account, ssl_context=context, on_call=self._on_call,
                               settings=self._ua_settings)
        self.listen_address: tuple[str, int] | None = None
        self.platform: PlatformCallControl | None = None
        """RingCentral Call Control (transfers of calls whose telephony session is known)."""
        self.recordings: TapSource | None = None
        """Where calls are recorded (VOICE_RECORDINGS; set by the server), else None."""
        self.startup_error: str | None = None
        """Why the device could not even be set up (its SIP info unreadable), if so."""
        self.sessions: dict[str, CallSession] = {}
        self._streams: set[RtpStream] = set()
        self._outbound: set[asyncio.Task[None]] = set()
        self._finished_totals = dict.fromkeys(_TOTALLED, 0)

    @property
    def enabled(self) -> bool:
        """Whether there is anything to run (a device, or a listening port)."""
        return sip_enabled(self.settings)

    def use_device(self, info: DeviceSipInfo) -> None:
        """Register as this device (credentials read from RingCentral); before `start`."""
        self.account = SipAccount(
            domain=info.domain, username=info.username, password=info.password,
            authorization_id=info.authorization_id, proxy_host=info.proxy_tls[0],
            proxy_port=info.proxy_tls[1])
        context = self._ssl_override or sip_ssl_context(self.settings)
        self.ua = SipUserAgent(self.account, ssl_context=context, on_call=self._on_call,
                               settings=self._ua_settings)

    async def start(self) -> None:
        """Start registering (in the background) and listening, as configured."""
        if self.account is not None:
            log.info("SIP: registering %s via %s:%s", self.account.aor,
                     self.account.proxy_host, self.account.proxy_port)
            await self.ua.start()
        if self.settings.sip_listen is not None:
            host, port = self.settings.sip_listen
            self.listen_address = await self.ua.listen(host, port)
            log.info("SIP: listening on %s:%s (TCP)", *self.listen_address)

    async def close(self) -> None:
        """Unregister and close the flows (after the manager drained the calls)."""
        await self.ua.stop()
        for task in list(self._outbound):
            task.cancel()
        if self._outbound:
            await asyncio.wait(self._outbound, timeout=5)

    def health(self) -> dict[str, object]:
        """The SIP part of the health document."""
        if self.startup_error is not None:
            return {"registration": "failing", "calls": 0, "detail": self.startup_error}
        status = self.ua.status
        # Ended dialogs linger a little (a retransmitted BYE must still find them).
        live = sum(1 for call in self.ua.calls.values() if not call.ended.is_set())
        body: dict[str, object] = {"registration": status.state.value, "calls": live}
        if self.account is not None:
            body["device"] = str(self.account.aor)
        if status.detail:
            body["detail"] = status.detail
        return body

    def media_totals(self) -> dict[str, int]:
        """RTP/SRTP counters of every call so far, live ones included (for Prometheus)."""
        totals = dict(self._finished_totals)
        for stream in self._streams:
            stats = stream.stats()
            for name in _TOTALLED:
                totals[name] += getattr(stats, name)
        return totals

    def _stream_finished(self, stream: RtpStream) -> None:
        if stream in self._streams:
            self._streams.discard(stream)
            stats = stream.stats()
            for name in _TOTALLED:
                self._finished_totals[name] += getattr(stats, name)
            if stats.srtp_auth_failures or stats.srtp_replays:
                log.warning("SRTP dropped %d packets failing authentication and %d replays",
                            stats.srtp_auth_failures, stats.srtp_replays)

    @property
    def registered(self) -> bool:
        """Whether RingCentral holds our binding."""
        return self.ua.status.state is RegistrationState.REGISTERED

    async def _on_call(self, incoming: IncomingCall) -> None:
        call_id_var.set(incoming.call_id)
        try:
            self.manager.check_capacity()
        except AdmissionError as exc:
            log.warning("SIP call refused: %s", exc.reason)
            incoming.reject(503 if exc.reason == "draining" else 486)
            return
        local = incoming.flow.local
        stream = await RtpStream.open(host=local.host, clock=self.clock,
                                      port_range=self.settings.sip_rtp_ports,
                                      name=incoming.call_id)
        try:
            call = await incoming.answer(
                address=self.settings.sip_rtp_host or local.host, port=stream.local_port,
                key=generate_key(),
                # RingCentral always uses SRTP over TLS; plain RTP only for TCP/UDP peers.
                allow_plain_rtp=local.transport != "TLS")
        except BaseException:  # CallEnded (cancelled, no ACK, 488) or cancellation
            await stream.close()
            raise
        assert call.media is not None
        stream.start(call.media)
        self._streams.add(stream)
        leg = SipLeg(call, stream, transfer_domain=self._transfer_domain(incoming),
                     platform=self.platform)
        try:
            await self._run_session(leg, call_id=incoming.call_id, from_number=incoming.caller,
                                    to_number=incoming.callee)
        finally:
            self._stream_finished(stream)

    def _transfer_domain(self, incoming: IncomingCall) -> str:
        if self.account is not None:
            return self.account.domain
        uri = incoming.invite.from_.uri
        return getattr(uri, "host", "localhost")

    async def dial(self, target: str, *, parameters: Mapping[str, str] | None = None,
                   ring_timeout_s: float = 60.0) -> OutboundCall:
        """Place a call through the device; once answered the session runs in the background.

        The call record says how it ended: an answered call is recorded by its session as
        any call is; a busy, unanswered or failed one is recorded here with that outcome.

        Raises:
            SipTransportError: not registered.
            ValueError: ``target`` is not a number, extension or SIP URI.
            AdmissionError: at capacity or draining.
        """
        self.manager.check_capacity()
        flow_local = self.ua.local_contact()
        stream = await RtpStream.open(host=flow_local.host, clock=self.clock,
                                      port_range=self.settings.sip_rtp_ports, name="outbound")
        self._streams.add(stream)
        params = dict(parameters or {})
        try:
            result = await self.ua.dial(
                target, address=self.settings.sip_rtp_host or flow_local.host,
                port=stream.local_port, key=generate_key(), ring_timeout_s=ring_timeout_s,
                on_early_media=stream.start)
        except BaseException:
            self._stream_finished(stream)
            await stream.close()
            raise
        call_id_var.set(result.call_id)
        log.info("SIP dial to %s: %s (%s)", mask_phone(target), result.outcome.value,
                 result.detail)
        call = result.call
        if call is None or call.media is None:
            self._stream_finished(stream)
            await stream.close()
            self._record_unanswered(result.call_id, target, params, result)
            return OutboundCall(result.call_id, result.outcome.value, result.status,
                                result.detail)
        stream.update(call.media)  # the 200's answer wins over any early media
        leg = SipLeg(call, stream, transfer_domain=self._account_domain(),
                     parameters=params, platform=self.platform)
        caller = self.account.username if self.account else ""

        async def run() -> None:
            try:
                await self._run_session(leg, call_id=result.call_id, from_number=caller,
                                        to_number=target, direction="outbound")
            finally:
                self._stream_finished(stream)

        task = asyncio.create_task(run(), name=f"sip-outbound-{result.call_id}")
        self._outbound.add(task)
        task.add_done_callback(self._outbound.discard)
        return OutboundCall(result.call_id, result.outcome.value, result.status, result.detail)

    def _account_domain(self) -> str:
        return self.account.domain if self.account is not None else "localhost"

    def _record_unanswered(self, call_id: str, target: str, params: Mapping[str, str],
                           result: DialResult) -> None:
        if self.records is None:
            return
        journal = CallJournal(self.records, call_id)
        journal.started(from_number=self.account.username if self.account else None,
                        to_number=target, protocol="sip", direction="outbound",
                        state="dialing", flow=params.get("flow"), custom_parameters=params)
        journal.event("notification", {"dial": result.outcome.value, "status": result.status,
                                       "detail": result.detail})
        journal.ended(state="ended", end_reason=result.outcome.value,
                      outcome=result.outcome.value, duration_s=0.0)

    async def _run_session(self, leg: SipLeg, *, call_id: str, from_number: str,
                           to_number: str, direction: str = "inbound") -> None:
        session_id = str(uuid.uuid4())
        session_id_var.set(session_id)
        call_leg = recorded(leg, self.recordings, call_id)
        session = CallSession(
            call_id=call_id, session_id=session_id,
            from_number=from_number, to_number=to_number, leg=call_leg,
            settings=self.settings, engines=self.engines, records=self.records,
            observer=self.observer, direction=direction)
        try:
            self.manager.admit(session)
        except AdmissionError as exc:
            log.warning("SIP call refused after answer: %s", exc.reason)
            await leg.close(exc.reason)
            return
        self.sessions[call_id] = session
        log.info("call connected (sip, %s) from %s to %s", direction, mask_phone(from_number),
                 mask_phone(to_number))
        try:
            try:
                await session.start()
            except SttError as exc:
                log.error("speech recognition unavailable: %s", exc)
                await session.end("stt_unavailable", failed=True)
                return
            await call_leg.run(session)
        finally:
            try:
                if not session.is_ended:
                    await session.end(leg.disconnect_reason())
            finally:
                self.sessions.pop(call_id, None)
                self.manager.release(session)
                await asyncio.shield(leg.close("ended"))
