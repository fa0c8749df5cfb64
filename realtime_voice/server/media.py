"""The media plane: a `websockets` asyncio server for every WebSocket carrier.

This module is the thin front end: routing, the token check and admission before any
session exists; then it hands the connection to a `WebSocketLeg` (the receive loop,
error frames, the inactivity watchdog) and the leg to a `CallSession`. Everything about
the call itself lives in the session; everything about the wire in the protocol codecs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime_voice.audio.format import UnsupportedFormatError
from realtime_voice.config import Settings
from realtime_voice.health import HealthReporter
from realtime_voice.legs.recording import TapSource, recorded
from realtime_voice.legs.websocket import PlatformCallControl, WebSocketLeg
from realtime_voice.log import call_id_var, mask_phone, session_id_var
from realtime_voice.protocols.base import MediaEvent, MediaProtocol, ProtocolError, StartEvent
from realtime_voice.protocols.browser import BrowserProtocol
from realtime_voice.protocols.ringcentral_bridge import RingCentralBridgeProtocol
from realtime_voice.providers.base import SttError
from realtime_voice.security.basic_auth import BasicAuthResult, check_basic_auth
from realtime_voice.security.rate_limit import AddressRateLimiter, client_address
from realtime_voice.security.tokens import StreamTokenIssuer, TokenError
from realtime_voice.security.twilio_signature import verify_twilio_signature
from realtime_voice.server.stream_routes import (
    TWILIO_PATH,
    BrowserSocket,
    StreamRoute,
    console_origin_refusal,
    stream_routes,
)
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.manager import AdmissionError, CallSessionManager
from realtime_voice.session.observer import SessionObserver
from realtime_voice.session.session import CallSession
from realtime_voice.storage.journal import RecordSink

__all__ = ["BRIDGE_PATH", "HEALTH_PATH", "TWILIO_PATH", "MediaServer"]

log = logging.getLogger(__name__)

BRIDGE_PATH = "/api/voice/realtime/ws/call"
HEALTH_PATH = "/api/voice/realtime/health"

# Close codes (docs/PROTOCOLS.md §2).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
CLOSE_TRY_AGAIN = 1013
CLOSE_INTERNAL = 1011

_HANDSHAKE_MESSAGES = 5  # connected, start, and a little slack; then give up
# Stream URL query keys the server itself reads; any others are the call's custom
# parameters (Exotel appends an applet's up to three parameters to the URL).
_STREAM_QUERY_KEYS = frozenset({"token", "sample-rate", "call_sid", "call_id", "from", "to"})
_MAX_QUERY_PARAMETERS = 10


class MediaServer:
    """Serves the media WebSocket endpoints and the health check on the media port.

    Args:
        settings: server settings.
        manager: the process's call registry.
        engines: shared providers and responder.
        tokens: verifies stream tokens.
        health: builds the health document.
        records: where calls are recorded (the `CallRecorder`), if anywhere.
        platform: telephony-platform call control (RingCentral), if configured.
        public_media_url: the public base URL Twilio connects to (signature checks).
        observer: where every call reports latencies, errors and totals (the metrics).
        on_refused: told the reason of every connection refused before a session started
            (``rate_limited``, ``origin``, ``not_found``, ``signature``, ``credentials``,
            ``token``, ``unsupported_format``, ``handshake``, ``at_capacity``,
            ``draining``, ``duplicate_call``).
        carrier_controls: each carrier's REST call control (transfer, hang-up), by the
            carrier's name (``telnyx``...), used for that carrier's calls.
    """

    def __init__(
        self,
        settings: Settings,
        manager: CallSessionManager,
        engines: SpeechEngines,
        tokens: StreamTokenIssuer,
        health: HealthReporter,
        records: RecordSink | None = None,
        platform: PlatformCallControl | None = None,
        public_media_url: Callable[[], str] | None = None,
        observer: SessionObserver | None = None,
        on_refused: Callable[[str], None] | None = None,
        carrier_controls: Mapping[str, PlatformCallControl] | None = None,
    ) -> None:
        self.public_media_url = public_media_url or (lambda: settings.public_media_url)
        self.observer = observer
        self._on_refused = on_refused
        self.records = records
        self.platform = platform
        self.settings = settings
        self.manager = manager
        self.engines = engines
        self.tokens = tokens
        self.health = health
        self.limiter = AddressRateLimiter.from_settings(settings)
        """Connections per client address (``None``: VOICE_CONNECTIONS_PER_IP_PER_MINUTE=0)."""
        self.routes: dict[str, StreamRoute] = stream_routes()
        """The carrier stream paths (`realtime_voice.server.stream_routes`)."""
        self.carrier_controls: dict[str, PlatformCallControl] = dict(carrier_controls or {})
        self.recordings: TapSource | None = None
        """Where calls are recorded (VOICE_RECORDINGS; set by the server), else None."""
        self._server: Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            max_size=self.settings.max_message_bytes,
            # Bounded receive buffer: a gateway that floods us is paused by TCP
            # backpressure rather than growing our memory.
            max_queue=64,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
            reuse_port=reuse_port,
        )
        sock = next(iter(self._server.sockets))
        bound: int = sock.getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening and close remaining connections (after the manager drained)."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------------ HTTP part

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == HEALTH_PATH:
            # Never rate-limited: load balancers poll it from a few addresses, and it
            # holds nothing per request (docs/SECURITY.md).
            status, body = self.health.report()
            return _json_response(status, body)
        flood = self._refuse_flood(connection, request)
        if flood is not None:
            self._refused("rate_limited")
            return flood
        origin = self._refuse_origin(request)
        if origin is not None:
            self._refused("origin")
            return origin
        route = self.routes.get(path)
        if path != BRIDGE_PATH and route is None:
            self._refused("not_found")
            return _json_response(404, {"error": f"no WebSocket endpoint at {path}"})
        if route is not None and route.console_origin:
            refusal = console_origin_refusal(
                request.headers.get("Origin"),
                request.headers.get("Host"),
                self.settings.allowed_origins,
                self.settings.public_http_url,
            )
            if refusal is not None:
                log.warning("%s stream refused: %s", route.carrier, refusal)
                self._refused("origin")
                return _json_response(403, {"error": "origin_not_allowed", "message": refusal})
        if route is not None and route.basic_auth:
            credentials = self._basic_auth(request)
            if credentials == BasicAuthResult.INVALID:
                log.warning("%s stream refused: wrong Basic credentials", route.carrier)
                self._refused("credentials")
                response = _json_response(
                    401, {"error": f"wrong Basic credentials for the {route.carrier} stream"}
                )
                response.headers["WWW-Authenticate"] = 'Basic realm="media"'
                return response
        if path == TWILIO_PATH and self.settings.twilio_auth_token:
            # docs/PROTOCOLS.md §3: Twilio signs the upgrade request like a webhook (the URL it
            # connected to, no form parameters).
            signature = request.headers.get("X-Twilio-Signature", "")
            url = self.public_media_url() + request.path
            if not signature or not verify_twilio_signature(
                self.settings.twilio_auth_token, url, [], signature
            ):
                log.warning("twilio stream refused: bad or missing X-Twilio-Signature")
                self._refused("signature")
                return _json_response(403, {"error": "missing or invalid X-Twilio-Signature"})
        return None

    def _basic_auth(self, request: Request) -> str:
        """Exotel's Basic credentials against EXOTEL_API_KEY/TOKEN (absent when unset)."""
        expected = self.settings.carriers.exotel_basic_auth
        if expected is None:
            return BasicAuthResult.ABSENT
        return check_basic_auth(request.headers.get("Authorization"), *expected)

    def _refused(self, reason: str) -> None:
        if self._on_refused is not None:
            self._on_refused(reason)

    def _refuse_flood(self, connection: ServerConnection, request: Request) -> Response | None:
        """429 when the client's address opened too many connections (before any work)."""
        if self.limiter is None:
            return None
        peer = connection.remote_address[0] if connection.remote_address else None
        address = client_address(
            peer,
            request.headers.get_all("X-Forwarded-For"),
            trust_proxy=self.settings.trust_proxy_headers,
        )
        refusal = self.limiter.check(address)
        if refusal is None:
            return None
        if refusal.first:
            # Once per spell: a flood must not become a flood of log lines.
            log.warning(
                "media connections from %s over %d/min: refusing with 429",
                address,
                self.limiter.per_minute,
            )
        response = _json_response(
            429,
            {
                "error": "too many connections from this address: "
                f"limit {self.limiter.per_minute} per minute, burst {self.limiter.burst} "
                "(VOICE_CONNECTIONS_PER_IP_PER_MINUTE)",
            },
        )
        response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response

    def _refuse_origin(self, request: Request) -> Response | None:
        """403 when an ``Origin`` is presented and VOICE_ALLOWED_ORIGINS does not list it.

        Gateways send no ``Origin``; browsers always do, so the list stops a page on
        another site from opening the media socket (cross-site WebSocket hijacking).
        """
        allowed = self.settings.allowed_origins
        origin = request.headers.get("Origin")
        if not allowed or origin is None or origin.strip().rstrip("/").lower() in allowed:
            return None
        log.warning("media connection refused: Origin %r is not allowed", origin[:100])
        return _json_response(
            403, {"error": f"Origin {origin[:100]!r} is not allowed (VOICE_ALLOWED_ORIGINS)"}
        )

    # ------------------------------------------------------------------ WebSocket part

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = dict(parse_qsl(parts.query))
        try:
            route = self.routes.get(parts.path)
            if route is None:
                await self._handle_bridge(ws, query)
            else:
                await self._handle_stream(ws, route, query)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("media connection failed")
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_INTERNAL, "internal error")

    async def _handle_bridge(self, ws: ServerConnection, query: Mapping[str, str]) -> None:
        call_id = query.get("call_id", "")
        token = query.get("token", "")
        call_id_var.set(call_id or "-")
        if not call_id or not token:
            log.warning("bridge connection refused: missing call_id or token")
            self._refused("token")
            await ws.close(CLOSE_POLICY, "missing call_id or token")
            return
        try:
            self.tokens.verify(token, call_id)
        except TokenError as exc:
            log.warning("bridge connection refused: token %s", exc.reason)
            self._refused("token")
            await ws.close(CLOSE_POLICY, f"token {exc.reason}")
            return
        try:
            fmt = RingCentralBridgeProtocol.format_from_query(query)
        except UnsupportedFormatError as exc:
            log.warning("bridge connection refused: unsupported format: %s", exc)
            self._refused("unsupported_format")
            await ws.close(CLOSE_UNSUPPORTED, f"unsupported audio format: {exc}"[:120])
            return
        await self._run_session(
            ws,
            RingCentralBridgeProtocol(fmt),
            call_id=call_id,
            session_id=query.get("session_id") or str(uuid.uuid4()),
            from_number=query.get("from_number", ""),
            to_number=query.get("to_number", ""),
            first_events=[],
        )

    async def _handle_stream(
        self, ws: ServerConnection, route: StreamRoute, query: Mapping[str, str]
    ) -> None:
        """A carrier stream: read up to ``start``, authenticate, then run the call.

        The call is authenticated by the single-use token the carrier's answer webhook
        minted for its call id (in the URL query, or in the start's custom parameters as
        Twilio's ``<Parameter>`` carries it), or, where the route allows it, by the
        carrier's Basic credentials on the upgrade.
        """
        carrier = route.carrier
        try:
            protocol = route.make_codec(query)
        except UnsupportedFormatError as exc:
            log.warning("%s stream refused: unsupported format: %s", carrier, exc)
            self._refused("unsupported_format")
            await ws.close(CLOSE_UNSUPPORTED, f"unsupported audio format: {exc}"[:120])
            return
        start = await self._read_start(ws, protocol, carrier)
        if start is None:
            return
        assert ws.request is not None
        by_credentials = route.basic_auth and (
            self._basic_auth(ws.request) == BasicAuthResult.VALID
        )
        call_id = start.call_id or query.get("call_sid") or ""
        if not call_id and by_credentials:
            # Seed 000's client names no call at all; the stream is still one call.
            call_id = start.stream_id or str(uuid.uuid4())
        if not call_id:
            self._refused("handshake")
            await ws.close(CLOSE_POLICY, "expected a start message with a call id")
            return
        call_id_var.set(call_id)
        if not by_credentials:
            token = query.get("token") or start.custom_parameters.get("token", "")
            try:
                if not token:
                    raise TokenError("missing")
                self.tokens.verify(token, call_id)
            except TokenError as exc:
                log.warning("%s stream refused: token %s", carrier, exc.reason)
                self._refused("token")
                await ws.close(CLOSE_POLICY, f"token {exc.reason}")
                return
        extra = {k: v for k, v in query.items() if k not in _STREAM_QUERY_KEYS}
        if extra:
            if len(extra) > _MAX_QUERY_PARAMETERS:
                self._refused("handshake")
                await ws.close(CLOSE_POLICY, f"over {_MAX_QUERY_PARAMETERS} URL parameters")
                return
            # What the start message itself says wins over the URL.
            params = {**extra, **start.custom_parameters}
            start = dataclasses.replace(start, custom_parameters=params)
        answered = self.manager.ringing(call_id)
        fixed = answered.answer.get("custom_parameters") if answered else None
        if isinstance(fixed, dict) and fixed:
            # What the answering side fixed (the browser mint's flow and params) wins
            # over anything the stream itself says.
            params = {**start.custom_parameters, **fixed}
            start = dataclasses.replace(start, custom_parameters=params)
        await self._run_session(
            ws,
            protocol,
            call_id=call_id,
            session_id=answered.session_id if answered else str(uuid.uuid4()),
            from_number=answered.from_number if answered else _number(protocol, "from", query),
            to_number=answered.to_number if answered else _number(protocol, "to", query),
            first_events=[start],
            platform=self.carrier_controls.get(carrier, self.platform),
        )

    async def _read_start(
        self, ws: ServerConnection, protocol: MediaProtocol, carrier: str
    ) -> StartEvent | None:
        """The carrier's start event, or None once the connection was refused."""
        try:
            async with asyncio.timeout(self.settings.websocket_timeout_s):
                for _ in range(_HANDSHAKE_MESSAGES):
                    message = await ws.recv()
                    try:
                        events = protocol.parse(message)
                    except ProtocolError as exc:
                        log.warning("%s handshake: %s", carrier, exc)
                        self._refused(
                            "unsupported_format" if exc.code == "unsupported_format"
                            else "handshake"
                        )
                        await ws.close(CLOSE_POLICY, exc.message[:120])
                        return None
                    start = next((e for e in events if isinstance(e, StartEvent)), None)
                    if start is not None:
                        return start
        except TimeoutError:
            pass
        self._refused("handshake")
        await ws.close(CLOSE_POLICY, "no start message")
        return None

    async def _run_session(
        self,
        ws: ServerConnection,
        protocol: MediaProtocol,
        *,
        call_id: str,
        session_id: str,
        from_number: str,
        to_number: str,
        first_events: list[MediaEvent],
        platform: PlatformCallControl | None = None,
    ) -> None:
        call_id_var.set(call_id)
        session_id_var.set(session_id)
        leg = WebSocketLeg(
            BrowserSocket(ws, protocol) if isinstance(protocol, BrowserProtocol) else ws,
            protocol,
            call_id=call_id,
            inactivity_timeout_s=self.settings.websocket_timeout_s,
            platform=platform if platform is not None else self.platform,
            first_events=first_events,
        )
        call_leg = recorded(leg, self.recordings, call_id)
        session = CallSession(
            call_id=call_id,
            session_id=session_id,
            from_number=from_number,
            to_number=to_number,
            leg=call_leg,
            settings=self.settings,
            engines=self.engines,
            records=self.records,
            observer=self.observer,
        )
        try:
            self.manager.admit(session)
        except AdmissionError as exc:
            code = CLOSE_POLICY if exc.reason == "duplicate_call" else CLOSE_TRY_AGAIN
            log.warning("call refused: %s", exc.reason)
            self._refused(exc.reason)
            await ws.close(code, exc.reason)
            return
        log.info(
            "call connected (%s) from %s to %s",
            protocol.name,
            mask_phone(from_number),
            mask_phone(to_number),
        )
        try:
            try:
                if isinstance(protocol, BrowserProtocol):
                    await ws.send(protocol.format_started())
                await session.start()
            except SttError as exc:
                log.error("speech recognition unavailable: %s", exc)
                await session.end("stt_unavailable", code=CLOSE_INTERNAL, failed=True)
                return
            await call_leg.run(session)
        finally:
            try:
                if not session.is_ended:
                    await session.end(leg.disconnect_reason())
            finally:
                # Whatever ending the session ran into, its slot must come back.
                self.manager.release(session)


def _number(protocol: MediaProtocol, side: str, query: Mapping[str, str]) -> str:
    """The caller's (``from``) or called (``to``) number as the stream itself names it."""
    value = getattr(protocol, f"{side}_number", None) or query.get(side) or ""
    return value if isinstance(value, str) else ""


def _json_response(status: int, body: object) -> Response:
    payload = json.dumps(body).encode()
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)
