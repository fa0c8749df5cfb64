"""`VoiceServer`: both planes in one process and one event loop, with graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from ai_pipeline.customers import Customer
from realtime_voice.audio.format import AudioFormat
from realtime_voice.config import Settings
from realtime_voice.health import HealthReporter
from realtime_voice.legs.sip import SIP_AUDIO_FORMAT
from realtime_voice.metrics import VoiceMetrics
from realtime_voice.ringcentral.call_control import CallControlClient
from realtime_voice.ringcentral.client import RingCentralClient
from realtime_voice.ringcentral.devices import read_device_sip_info
from realtime_voice.ringcentral.platform_control import RingCentralPlatformControl
from realtime_voice.security.operator_token import load_or_create_operator_token
from realtime_voice.security.rate_limit import AddressRateLimiter
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.server.carriers import (
    add_carrier_routes,
    build_carrier_controls,
    close_carrier_controls,
)
from realtime_voice.server.media import MediaServer
from realtime_voice.server.sip_phone import SipPhone, sip_enabled
from realtime_voice.server.wiring import build_engines, warm_up
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.live_feed import LiveCallFeed
from realtime_voice.session.manager import CallSessionManager
from realtime_voice.storage import CallRecorder, CallStore, upgrade_database
from realtime_voice.storage.recording import Recordings
from webhooks.app import build_http_app
from webhooks.browser_calls import add_browser_call_route
from webhooks.calls_api import add_calls_routes
from webhooks.console_auth import ConsoleAuth
from webhooks.console_pages import PageGate, add_console_pages
from webhooks.live_api import add_live_routes
from webhooks.login_page import add_login_routes
from webhooks.outbound_api import add_outbound_route
from webhooks.ringcentral import RingCentralWebhook
from webhooks.ringcentral_records import RecorderCallEventSink
from webhooks.tts_preview import add_tts_preview_route
from webhooks.twilio_answer import TwilioAnswerHandler

__all__ = ["VoiceServer", "run_server"]

log = logging.getLogger(__name__)


class VoiceServer:
    """Owns the manager, engines, token issuer, the HTTP app and the media server.

    Args:
        settings: server settings; ports may be 0 (bound ports are in `http_port` and
            `media_port` after `start`); an empty ``public_media_url`` means
            ``ws://127.0.0.1:<bound media port>``.
        engines: providers (default: built from settings).
    """

    def __init__(self, settings: Settings, engines: SpeechEngines | None = None) -> None:
        self.settings = settings
        self.engines = engines if engines is not None else build_engines(settings)
        self.manager = CallSessionManager(
            max_calls=settings.max_calls, ringing_ttl_s=settings.stream_token_ttl_s
        )
        self.tokens = StreamTokenIssuer(settings.stream_secret, ttl_s=settings.stream_token_ttl_s)
        self.recorder = CallRecorder(
            settings.database_url,
            spool_dir=Path(settings.spool_dir),
            spool_max_bytes=settings.spool_max_bytes,
        )
        self.call_store = CallStore(self.recorder.engine)
        # Every call's records pass the live feed on their way to the recorder (the console).
        self.live = LiveCallFeed(self.manager.sessions)
        self.records = self.live.tap(self.recorder)
        # The operators' token (VOICE_API_TOKEN, else generated once into the data
        # directory) and the console's check of it on every operator route: the token as
        # a bearer, or a login session with cross-site checks on writes.
        self.operator_token = load_or_create_operator_token(settings.console, settings.api_token)
        self.auth = ConsoleAuth.from_settings(settings, self.operator_token.token)
        self.metrics = VoiceMetrics(
            self.manager,
            spool_depth=lambda: self.recorder.spool_depth,
            recorder_counters=lambda: self.recorder.counters,
            sip=(lambda: (self.sip.registered, self.sip.media_totals()))
            if sip_enabled(settings) else None,
        )
        self.sip = SipPhone(settings, self.manager, self.engines, records=self.records,
                            observer=self.metrics)
        self.health = HealthReporter(
            self.manager, self.engines, database=lambda: self.recorder.status,
            sip=self.sip.health if self.sip.enabled else None,
        )
        self.ringcentral = RingCentralWebhook(
            verification_token=settings.rc_webhook_verification_token,
            sink=RecorderCallEventSink(self.recorder, lambda tsid: self._rc_call_id(tsid)),
            manager=self.manager,
        )
        self.rc_client: RingCentralClient | None = None
        platform: RingCentralPlatformControl | None = None
        if settings.rc_client_id and settings.rc_client_secret and settings.rc_jwt_token:
            self.rc_client = RingCentralClient.from_settings(settings)
            platform = RingCentralPlatformControl(
                self.ringcentral, CallControlClient(self.rc_client)
            )
        self.sip.platform = platform
        self.carrier_controls = build_carrier_controls(settings, lambda: self.public_http_url)
        self.media = MediaServer(
            settings,
            self.manager,
            self.engines,
            self.tokens,
            self.health,
            self.records,
            platform,
            public_media_url=lambda: self.public_media_url,
            observer=self.metrics,
            on_refused=self.metrics.media_refused,
            carrier_controls=self.carrier_controls,
        )
        # Call recordings (VOICE_RECORDINGS): both front ends wrap their legs to tap the
        # writer; the calls API serves and erases the files whether or not it is on.
        console = settings.console
        self.recordings = Recordings(console.recordings_path, enabled=console.recordings,
                                     retention_days=console.recording_retention_days)
        self.media.recordings = self.sip.recordings = self.recordings
        self.twilio = TwilioAnswerHandler(
            self.manager,
            self.tokens,
            lambda: self.public_media_url,
            auth_token=settings.twilio_auth_token,
            public_http_url=settings.public_http_url,
        )
        self.http_port = 0
        self.media_port = 0
        self.public_media_url = settings.public_media_url
        self._runner: web.AppRunner | None = None

    @property
    def public_http_url(self) -> str:
        """The HTTP plane's public base URL: VOICE_PUBLIC_HTTP_URL, else loopback."""
        return self.settings.public_http_url or f"http://127.0.0.1:{self.http_port}"

    def _rc_call_id(self, telephony_session_id: str) -> str:
        return self.ringcentral.call_id_for(telephony_session_id)

    async def start(self) -> None:
        """Migrate the database, load models, then listen on both planes."""
        try:
            await asyncio.to_thread(upgrade_database, self.settings.database_url)
        except Exception as exc:
            # Calls are still taken: the recorder spools until the database is back
            # (run `realtime-voice db upgrade` once it is reachable).
            log.error("database migration failed, recording to the spool: %s", exc)
        await self.recorder.start()
        await self.recordings.start()
        await self._load_customers()
        formats = (AudioFormat(), SIP_AUDIO_FORMAT) if self.sip.enabled else (AudioFormat(),)
        await warm_up(self.engines, greeting_formats=formats)
        self.media_port = await self.media.start(self.settings.media_host, self.settings.media_port)
        if not self.public_media_url:
            self.public_media_url = f"ws://127.0.0.1:{self.media_port}"
        app = build_http_app(
            manager=self.manager,
            tokens=self.tokens,
            health=self.health,
            media_url=lambda: self.public_media_url,
            verification_token=self.settings.rc_webhook_verification_token,
            ringcentral=self.ringcentral,
            twilio=self.twilio,
            metrics=self.metrics,
            limiter=AddressRateLimiter.from_settings(self.settings),
            trust_proxy_headers=self.settings.trust_proxy_headers,
        )
        # Before the calls API: /api/calls/live must not be taken for a call id.
        add_live_routes(
            app, feed=self.live, manager=self.manager, auth=self.auth,
            flows=lambda: getattr(self.engines.responder, "flows", {}),
            registry=self.metrics.registry,
            transfer_number=self.settings.transfer_phone_number,
        )
        add_login_routes(app, self.auth)
        add_console_pages(app, self.auth if isinstance(self.auth, PageGate) else None)
        add_calls_routes(app, self.call_store, auth=self.auth, recordings=self.recordings,
                         is_live=lambda call_id: self.manager.get(call_id) is not None,
                         records=self.recorder)
        add_carrier_routes(
            app, self.settings, self.manager, self.tokens, lambda: self.public_media_url
        )
        add_browser_call_route(
            app, self.manager, self.tokens, lambda: self.public_media_url, self.auth,
            flows=getattr(self.engines.responder, "flows", None),
            ttl_s=self.settings.console.browser_token_ttl_s,
        )
        add_outbound_route(app, self.sip if self.sip.account is not None else None,
                           auth=self.auth)
        add_tts_preview_route(app, self.engines.make_tts)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        if self.sip.enabled:
            await self._start_sip()
        log.info(
            "listening: http :%d, media :%d (public %s); stt=%s tts=%s",
            self.http_port,
            self.media_port,
            self.public_media_url,
            self.engines.stt_name,
            self.engines.tts_name,
        )

    async def _start_sip(self) -> None:
        """Read the device's SIP credentials from RingCentral when so configured, then
        register. A failure to read them is logged and leaves the SIP leg down (health
        says so); the WebSocket carriers are served all the same."""
        device_id = self.settings.rc_sip_device_id
        if device_id is not None:
            if self.rc_client is None:
                log.error("SIP: RC_SIP_DEVICE_ID needs the JWT app (RC_CLIENT_ID...)")
                return
            try:
                info = await read_device_sip_info(self.rc_client, device_id)
            except Exception as exc:
                log.error("SIP: cannot read device %s's SIP credentials: %s", device_id, exc)
                self.sip.startup_error = f"cannot read device {device_id}'s SIP info: {exc}"
                return
            log.info("SIP: credentials of device %s read from RingCentral", device_id)
            self.sip.use_device(info)
        await self.sip.start()

    async def _load_customers(self) -> None:
        """Read the customer table ahead into the flows' directory (greetings by name must
        not wait on the database mid-call)."""
        try:
            rows = await asyncio.to_thread(self.call_store.list_customers_sync)
        except Exception as exc:
            log.warning("customers not loaded (callers are not greeted by name): %s", exc)
            return
        for row in rows:
            if row.name:
                self.engines.customers.add(
                    Customer(
                        name=row.name,
                        phone_number=row.phone,
                        customer_id=row.external_id or str(row.id),
                        details={k: str(v) for k, v in (row.details or {}).items()},
                    )
                )
        log.info("%d customer(s) loaded for personal greetings", len(rows))

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop taking calls, let live ones finish, end the rest politely, close both planes."""
        timeout = self.settings.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        await self.manager.drain(timeout)
        await self.sip.close()
        await self.media.close()
        await self.recordings.close()  # every call is over: finish the files
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.rc_client is not None:
            await self.rc_client.aclose()
        await close_carrier_controls(self.carrier_controls)
        await self.engines.aclose()
        await self.recorder.close(timeout_s=10)


async def run_server(
    settings: Settings, *, on_ready: Callable[[VoiceServer], None] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully.

    ``on_ready`` is called once both planes listen (the CLI prints the console's URL).
    """
    server = VoiceServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(
        f"realtime-voice ready: http://localhost:{server.http_port} "
        f"(webhooks), {server.public_media_url} (media). Ctrl-C to stop.",
        flush=True,
    )
    if on_ready is not None:
        on_ready(server)
    await stop.wait()
    log.info("shutdown requested: draining live calls")
    await server.stop()
